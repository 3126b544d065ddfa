// FakeTpm's capability profiles. Sources (docs/tpm.md, "doctor"):
// - kSwtpm: `tpm2_getcap` against swtpm 0.7 (Debian 12), which runs IBM's
//   TPM 2.0 reference code: manufacturer "IBM", NV_BUFFER_MAX 1024,
//   NV_INDEX_MAX 2048, 65 persistent handles free, MAX_AUTH_FAIL 3.
// - kSlb9670: Infineon, "OPTIGA TPM SLB 9670 TPM2.0 Data Sheet", Rev. 1.4,
//   2018-12-07: "Minimum of 6962 bytes free NV memory", "Up to 7 loaded
//   persistent Objects (TPM_PT_HR_PERSISTENT_MIN)", "Up to 768 Byte for NV
//   read or NV write", ECC NIST P-256 and BN-256, SHA-1/SHA-256, RSA; and
//   the seed's statement that it lacks TPM2_EncryptDecrypt(2). Firmware
//   7.85 is a common shipped version; NV_INDEX_MAX (not in the data sheet)
//   is assumed equal to NV_BUFFER_MAX; MAX_AUTH_FAIL 32 is the TCG PC
//   Client default.
#include <initializer_list>

#include "testing/fake_tpm.h"

namespace kgr::testing {
namespace {

namespace ids = tpm_ids;

// The commands kgr sends (tpm.h's tpm_ids).
constexpr std::initializer_list<uint32_t> kKgrCommands = {
    ids::kCcNvUndefineSpace,
    ids::kCcEvictControl,
    ids::kCcNvDefineSpace,
    ids::kCcCreatePrimary,
    ids::kCcNvWrite,
    ids::kCcCreate,
    ids::kCcLoad,
    ids::kCcFlushContext,
    ids::kCcNvRead,
    ids::kCcPolicyPcr,
    ids::kCcNvReadPublic,
    ids::kCcReadPublic,
    ids::kCcStartAuthSession,
    ids::kCcGetCapability,
    ids::kCcGetRandom,
    ids::kCcPcrRead,
    ids::kCcPolicyAuthValue,
    ids::kCcPolicyGetDigest};

TpmCapabilities Swtpm() {
  TpmCapabilities c;
  c.manufacturer = "IBM";
  c.firmware = "8217.4131 (0x20191023)";
  c.algorithms = {0x0001,       ids::kAlgAes, 0x0004,         ids::kAlgSha256,
                  0x000C,       0x000D,       ids::kAlgEcdsa, ids::kAlgEcdh,
                  ids::kAlgEcc, ids::kAlgCfb, 0x0044};
  c.ecc_curves = {0x0001, 0x0002, ids::kCurveNistP256, 0x0004, 0x0005, 0x0010};
  c.commands = kKgrCommands;
  c.commands.insert(ids::kCcEncryptDecrypt);
  c.commands.insert(ids::kCcEncryptDecrypt2);
  c.nv_buffer_max = 1024;
  c.nv_index_max = 2048;
  c.persistent_avail = 65;
  c.max_auth_fail = 3;
  c.boot_pcrs_zero = true;
  return c;
}

TpmCapabilities Slb9670() {
  TpmCapabilities c;
  c.manufacturer = "IFX";
  c.firmware = "7.85 (0x00070055)";
  c.algorithms = {0x0001,         ids::kAlgAes,  0x0004,       ids::kAlgSha256,
                  ids::kAlgEcdsa, ids::kAlgEcdh, ids::kAlgEcc, ids::kAlgCfb};
  c.ecc_curves = {ids::kCurveNistP256, 0x0010};
  c.commands = kKgrCommands;  // no EncryptDecrypt(2)
  c.nv_buffer_max = 768;
  c.nv_index_max = 768;
  c.persistent_avail = 7;
  c.max_auth_fail = 32;
  c.boot_pcrs_zero = true;  // a Raspberry Pi's firmware measures nothing
  return c;
}

}  // namespace

TpmCapabilities FakeTpmProfileCapabilities(FakeTpmProfile profile) {
  switch (profile) {
    case FakeTpmProfile::kSlb9670:
      return Slb9670();
    case FakeTpmProfile::kWithoutP256: {
      TpmCapabilities c = Swtpm();
      c.ecc_curves.erase(ids::kCurveNistP256);
      return c;
    }
    case FakeTpmProfile::kSwtpm:
      break;
  }
  return Swtpm();
}

}  // namespace kgr::testing
