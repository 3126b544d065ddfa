// Tpm: the narrow interface through which kgr uses a TPM 2.0 (or the
// software variant) for the node's local trust structure and NVRAM-held
// secrets. Implementations: EsapiTpm (tpm2-tss, libkgr/tpm/), SoftwareTpm
// (file with mode 0600, the seed's "program module without TPM"), and
// hand-written fakes in tests.
//
// Never uses TPM2_EncryptDecrypt(2): AES runs in OpenSSL (crypto.h) with
// keys read from NV. Per-pair session keys never go to NV.
//
// Thread safety: not thread-safe; one owner (the daemon's loop) calls it.
#ifndef KGR_TPM_H_
#define KGR_TPM_H_

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "kgr/bytes.h"
#include "kgr/filesystem.h"
#include "kgr/secret.h"
#include "kgr/status.h"

namespace kgr {

// The NV slots kgr uses; each maps to one NV index (docs/tpm.md lists the
// handles, sizes and attributes).
enum class NvSlot : uint8_t {
  kIdentity = 0,  // node's public-ish own data: N_ID, BA, TOPIC1, TOPIC2
  kNodeKeys = 1,  // NK || NKsign
  kNtag = 2,      // NTAG (N nodes)
  kKsKeys = 3,    // NKSK || NKSKsign (N nodes, after registration)
};
inline constexpr int kNvSlotCount = 4;
// Largest blob any slot holds (bytes). Slots are defined with this size.
inline constexpr size_t kNvSlotMaxSize = 256;

std::string_view NvSlotName(NvSlot slot);

struct TpmCounters {
  uint64_t nv_writes = 0;     // NV_Write/NV_DefineSpace since process start
  uint64_t tpm_commands = 0;  // every command sent to the TPM
};

class Tpm {
 public:
  virtual ~Tpm() = default;

  // Creates the local trust structure if missing: SRK, ANK and, when
  // `with_kedk`, KEDK. Idempotent: an existing structure is reused, never
  // replaced.
  virtual Status EnsureTrustStructure(bool with_kedk) = 0;

  // The KEDK public area in a canonical encoding (the TPM2B_PUBLIC bytes),
  // the input of NTAG = SHA-256(N_ID || KEDK_pub || entry_no).
  // FAILED_PRECONDITION if there is no KEDK.
  virtual StatusOr<Bytes> KedkPublic() = 0;

  // `n` random bytes from the TPM's RNG (TPM2_GetRandom), n <= 64 per call
  // in hardware; implementations loop as needed.
  virtual StatusOr<SecretBytes> GetRandom(size_t n) = 0;

  // Writes `data` (<= kNvSlotMaxSize) to the slot's NV index, defining the
  // index if missing. Each call is one NV write (wear is counted).
  virtual Status NvWrite(NvSlot slot, std::span<const uint8_t> data) = 0;
  // Reads the slot. NOT_FOUND if never written.
  virtual StatusOr<SecretBytes> NvRead(NvSlot slot) = 0;
  // Undefines the slot's index (for decommissioning). OK if absent.
  virtual Status NvErase(NvSlot slot) = 0;

  virtual TpmCounters counters() const = 0;
  // "esapi", "software" or "fake".
  virtual std::string_view kind() const = 0;
};

struct TpmOptions {
  // "none" selects the software store; anything else is a TCTI string
  // passed verbatim to Tss2_TctiLdr_Initialize (e.g.
  // "swtpm:host=127.0.0.1,port=2321", "device:/dev/tpmrm0").
  std::string tcti = "device:/dev/tpmrm0";
  // Directory for files the TPM layer keeps (NV auth file, software store).
  std::string state_dir;
  // Bind NV reads to the current PCR values (sha256 bank, PCRs 0-7).
  bool pcr_policy = false;
  // Where those files are written (not owned); null: the real file system.
  FileSystem* fs = nullptr;
};

// Resolves the TCTI: `flag` if non-empty, else $KGR_TCTI, else the default
// "device:/dev/tpmrm0".
std::string ResolveTcti(const std::string& flag);

// Opens the TPM named by options.tcti, or the software store when
// options.tcti == "none" (logs a warning every time). Errors carry the
// decoded TPM response code text.
StatusOr<std::unique_ptr<Tpm>> OpenTpm(const TpmOptions& options);

}  // namespace kgr

#endif  // KGR_TPM_H_
