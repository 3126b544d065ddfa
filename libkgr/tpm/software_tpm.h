// SoftwareTpm: the seed's "program module without TPM" (--tcti none). Keeps
// what a TPM would hold in one file, <state_dir>/software-tpm.bin, mode
// 0600, replaced atomically on every change. Nothing but file permissions
// protects it: anyone who copies the disk gets the node's secrets.
//
// File format (all integers big-endian):
//   file   := magic[8]="KGRSWTP1" flags:u8 [kedk:65] count:u8 slot{count}
//             digest[32]
//   flags  := bit 0: trust structure created; bit 1: KEDK present (then the
//             65-byte `kedk` field follows: 0x04 || 64 random bytes, a
//             stand-in for a P-256 public point; there is no private key)
//   slot   := id:u8 len:u16 data[len]        (id < kNvSlotCount, len <= 256)
//   digest := SHA-256 of all preceding bytes (detects torn/corrupt files)
#ifndef KGR_TPM_SOFTWARE_TPM_H_
#define KGR_TPM_SOFTWARE_TPM_H_

#include <memory>

#include "kgr/status.h"
#include "kgr/tpm.h"

namespace kgr {

// Opens (or starts empty) the store in `options.state_dir`, creating the
// directory (0700) if missing. DATA_LOSS if the file is corrupt;
// INVALID_ARGUMENT if state_dir is empty; FAILED_PRECONDITION if
// options.pcr_policy is set (there are no PCRs without a TPM).
// counters().tpm_commands stays 0; nv_writes counts like EsapiTpm (a write
// to a new slot counts 2: define + write).
StatusOr<std::unique_ptr<Tpm>> OpenSoftwareTpm(const TpmOptions& options);

}  // namespace kgr

#endif  // KGR_TPM_SOFTWARE_TPM_H_
