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
#include <optional>
#include <set>
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
// Size of every NV index kgr defines: u16 length prefix || data || padding.
// Each NV_Write and NV_Read moves exactly this many bytes.
inline constexpr size_t kNvIndexBytes = 2 + kNvSlotMaxSize;

std::string_view NvSlotName(NvSlot slot);

struct TpmCounters {
  uint64_t nv_writes = 0;     // NV_Write/NV_DefineSpace since process start
  uint64_t tpm_commands = 0;  // every command sent to the TPM
};

// TPM 2.0 identifiers (TPM 2.0 Part 2 tables 9, 12 and 11) kgr depends
// on; esapi_capabilities.cc checks them against tss2's definitions.
namespace tpm_ids {
inline constexpr uint16_t kAlgAes = 0x0006;
inline constexpr uint16_t kAlgSha256 = 0x000B;
inline constexpr uint16_t kAlgEcdsa = 0x0018;
inline constexpr uint16_t kAlgEcdh = 0x0019;
inline constexpr uint16_t kAlgEcc = 0x0023;
inline constexpr uint16_t kAlgCfb = 0x0043;
inline constexpr uint16_t kCurveNistP256 = 0x0003;
inline constexpr uint32_t kCcNvUndefineSpace = 0x0122;
inline constexpr uint32_t kCcEvictControl = 0x0120;
inline constexpr uint32_t kCcNvDefineSpace = 0x012A;
inline constexpr uint32_t kCcCreatePrimary = 0x0131;
inline constexpr uint32_t kCcNvWrite = 0x0137;
inline constexpr uint32_t kCcCreate = 0x0153;
inline constexpr uint32_t kCcLoad = 0x0157;
inline constexpr uint32_t kCcEncryptDecrypt = 0x0164;
inline constexpr uint32_t kCcFlushContext = 0x0165;
inline constexpr uint32_t kCcNvRead = 0x014E;
inline constexpr uint32_t kCcPolicyPcr = 0x017F;
inline constexpr uint32_t kCcNvReadPublic = 0x0169;
inline constexpr uint32_t kCcReadPublic = 0x0173;
inline constexpr uint32_t kCcStartAuthSession = 0x0176;
inline constexpr uint32_t kCcGetCapability = 0x017A;
inline constexpr uint32_t kCcGetRandom = 0x017B;
inline constexpr uint32_t kCcPcrRead = 0x017E;
inline constexpr uint32_t kCcPolicyAuthValue = 0x016B;
inline constexpr uint32_t kCcPolicyGetDigest = 0x0189;
inline constexpr uint32_t kCcEncryptDecrypt2 = 0x0193;
}  // namespace tpm_ids

// What a TPM reports about itself (TPM2_GetCapability), for `doctor`.
struct TpmCapabilities {
  std::string manufacturer;  // TPM_PT_MANUFACTURER as text, e.g. "IBM", "IFX"
  std::string firmware;      // TPM_PT_FIRMWARE_VERSION_1 as "major.minor"
  std::set<uint16_t> algorithms;  // TPM_ALG_IDs implemented
  std::set<uint16_t> ecc_curves;  // TPM_ECC_CURVEs implemented
  std::set<uint32_t> commands;    // TPM_CCs implemented
  uint32_t nv_buffer_max = 0;     // TPM_PT_NV_BUFFER_MAX: bytes per NV_Write
  uint32_t nv_index_max = 0;      // TPM_PT_NV_INDEX_MAX: largest index
  uint32_t nv_indices = 0;        // TPM_PT_HR_NV_INDEX: indices defined
  // Their data sizes added up. TPM 2.0 has no property for free NV bytes:
  // doctor estimates it from the data sheet of a TPM it recognizes.
  uint32_t nv_bytes_defined = 0;
  uint32_t persistent_avail = 0;        // TPM_PT_HR_PERSISTENT_AVAIL
  int kgr_nv_slots = 0;                 // kgr's NV indices already defined
  int kgr_persistent = 0;               // of SRK, ANK, KEDK already persistent
  bool owner_auth_set = false;          // TPMA_PERMANENT ownerAuthSet
  bool owner_hierarchy_enabled = true;  // TPMA_STARTUP_CLEAR shEnable
  bool in_lockout = false;              // TPMA_PERMANENT inLockout
  uint32_t lockout_counter = 0;         // TPM_PT_LOCKOUT_COUNTER
  uint32_t max_auth_fail = 0;           // TPM_PT_MAX_AUTH_FAIL
  // sha256 PCRs 0-7 all zero (nothing measured into them); empty if the
  // bank is not there or no PCRs exist (software store).
  std::optional<bool> boot_pcrs_zero;
  bool is_tpm = true;  // false: the software store (no TPM at all)
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
  // Evicts kgr's persistent keys (ANK, KEDK) for decommissioning; the SRK
  // stays (the TCG handle may be shared, and it is re-derived from the
  // owner seed). OK if absent. Refuses (FAILED_PRECONDITION) an object at a
  // kgr handle that is not kgr's kind of key.
  virtual Status RemoveKeys() = 0;

  // What the TPM implements and has room for. Reads only.
  virtual StatusOr<TpmCapabilities> Capabilities() = 0;

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
