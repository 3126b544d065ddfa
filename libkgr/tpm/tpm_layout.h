// The fixed layout of kgr's state in a TPM 2.0 and in the state directory:
// persistent handles, NV index handles and sizes, file names. docs/tpm.md
// explains every value. Free of tss2 headers so that tests and tools may
// include it.
#ifndef KGR_TPM_TPM_LAYOUT_H_
#define KGR_TPM_TPM_LAYOUT_H_

#include <cstddef>
#include <cstdint>

#include "kgr/tpm.h"

namespace kgr::tpm_layout {

// Persistent objects (owner hierarchy). 0x81000001 is the TCG SRK handle
// (reused if something already lives there and is a storage key). ANK and
// KEDK sit in the owner range above the TCG EK range 0x81010000-0x8101FFFF,
// so that a TCG-provisioned EK (at 0x81010001/0x81010002) never collides.
inline constexpr uint32_t kSrkHandle = 0x81000001;
inline constexpr uint32_t kAnkHandle = 0x81020001;
inline constexpr uint32_t kKedkHandle = 0x81020002;

// NV indices: kNvBaseHandle + slot number, in the TCG owner NV range
// 0x01000000-0x013FFFFF (0x4B = 'K'; away from 0x01000000, where
// tpm2_nvdefine puts indices it numbers itself).
inline constexpr uint32_t kNvBaseHandle = 0x01004B00;
// Every index holds: length (u16, big-endian) || data || zero padding.
inline constexpr size_t kNvLengthPrefix = 2;
inline constexpr size_t kNvIndexSize = kNvLengthPrefix + kNvSlotMaxSize;
static_assert(kNvIndexSize == kNvIndexBytes);

inline constexpr uint32_t NvHandle(NvSlot slot) {
  return kNvBaseHandle + static_cast<uint32_t>(slot);
}
inline constexpr bool ValidSlot(NvSlot slot) {
  return static_cast<uint8_t>(slot) < kNvSlotCount;
}

// Files under TpmOptions::state_dir.
inline constexpr char kNvAuthFile[] = "nv-auth";  // 32 raw bytes, mode 0600
inline constexpr size_t kNvAuthSize = 32;
inline constexpr char kSoftwareStoreFile[] = "software-tpm.bin";  // 0600

}  // namespace kgr::tpm_layout

#endif  // KGR_TPM_TPM_LAYOUT_H_
