// EsapiTpm::Capabilities: what the TPM implements and has room for, read
// with TPM2_GetCapability (and NV_ReadPublic, PCR_Read) for `doctor`;
// BootPcrsZero also guards the PCR policy (esapi_nv.cc).
#include <tss2/tss2_esys.h>

#include <algorithm>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "tpm/esapi_internal.h"

namespace kgr::tpm_internal {
namespace {

static_assert(tpm_ids::kAlgAes == TPM2_ALG_AES);
static_assert(tpm_ids::kAlgSha256 == TPM2_ALG_SHA256);
static_assert(tpm_ids::kAlgEcdsa == TPM2_ALG_ECDSA);
static_assert(tpm_ids::kAlgEcdh == TPM2_ALG_ECDH);
static_assert(tpm_ids::kAlgEcc == TPM2_ALG_ECC);
static_assert(tpm_ids::kAlgCfb == TPM2_ALG_CFB);
static_assert(tpm_ids::kCurveNistP256 == TPM2_ECC_NIST_P256);
static_assert(tpm_ids::kCcNvUndefineSpace == TPM2_CC_NV_UndefineSpace);
static_assert(tpm_ids::kCcEvictControl == TPM2_CC_EvictControl);
static_assert(tpm_ids::kCcNvDefineSpace == TPM2_CC_NV_DefineSpace);
static_assert(tpm_ids::kCcCreatePrimary == TPM2_CC_CreatePrimary);
static_assert(tpm_ids::kCcNvWrite == TPM2_CC_NV_Write);
static_assert(tpm_ids::kCcCreate == TPM2_CC_Create);
static_assert(tpm_ids::kCcLoad == TPM2_CC_Load);
static_assert(tpm_ids::kCcEncryptDecrypt == TPM2_CC_EncryptDecrypt);
static_assert(tpm_ids::kCcFlushContext == TPM2_CC_FlushContext);
static_assert(tpm_ids::kCcNvRead == TPM2_CC_NV_Read);
static_assert(tpm_ids::kCcPolicyPcr == TPM2_CC_PolicyPCR);
static_assert(tpm_ids::kCcNvReadPublic == TPM2_CC_NV_ReadPublic);
static_assert(tpm_ids::kCcReadPublic == TPM2_CC_ReadPublic);
static_assert(tpm_ids::kCcStartAuthSession == TPM2_CC_StartAuthSession);
static_assert(tpm_ids::kCcGetCapability == TPM2_CC_GetCapability);
static_assert(tpm_ids::kCcGetRandom == TPM2_CC_GetRandom);
static_assert(tpm_ids::kCcPcrRead == TPM2_CC_PCR_Read);
static_assert(tpm_ids::kCcPolicyAuthValue == TPM2_CC_PolicyAuthValue);
static_assert(tpm_ids::kCcPolicyGetDigest == TPM2_CC_PolicyGetDigest);
static_assert(tpm_ids::kCcEncryptDecrypt2 == TPM2_CC_EncryptDecrypt2);

// TPM_PT_MANUFACTURER: four ASCII characters, big-endian, space/NUL padded.
std::string VendorText(uint32_t v) {
  std::string out;
  for (int shift = 24; shift >= 0; shift -= 8) {
    const char c = static_cast<char>((v >> shift) & 0xFF);
    if (c > ' ' && c < 0x7F) out.push_back(c);
  }
  return out;
}

// TPM_PT_FIRMWARE_VERSION_1: vendor-specific; Infineon puts major.minor in
// the two halves, swtpm a date. Both shown.
std::string FirmwareText(uint32_t v) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%u.%u (0x%08x)", v >> 16, v & 0xFFFF, v);
  return buf;
}

void TakeProperty(const TPMS_TAGGED_PROPERTY& p, TpmCapabilities& caps) {
  switch (p.property) {
    case TPM2_PT_MANUFACTURER:
      caps.manufacturer = VendorText(p.value);
      break;
    case TPM2_PT_FIRMWARE_VERSION_1:
      caps.firmware = FirmwareText(p.value);
      break;
    case TPM2_PT_NV_INDEX_MAX:
      caps.nv_index_max = p.value;
      break;
    case TPM2_PT_NV_BUFFER_MAX:
      caps.nv_buffer_max = p.value;
      break;
    case TPM2_PT_PERMANENT:
      caps.owner_auth_set = (p.value & TPMA_PERMANENT_OWNERAUTHSET) != 0;
      caps.in_lockout = (p.value & TPMA_PERMANENT_INLOCKOUT) != 0;
      break;
    case TPM2_PT_STARTUP_CLEAR:
      caps.owner_hierarchy_enabled =
          (p.value & TPMA_STARTUP_CLEAR_SHENABLE) != 0;
      break;
    case TPM2_PT_HR_NV_INDEX:
      caps.nv_indices = p.value;
      break;
    case TPM2_PT_HR_PERSISTENT_AVAIL:
      caps.persistent_avail = p.value;
      break;
    case TPM2_PT_LOCKOUT_COUNTER:
      caps.lockout_counter = p.value;
      break;
    case TPM2_PT_MAX_AUTH_FAIL:
      caps.max_auth_fail = p.value;
      break;
    default:
      break;
  }
}

}  // namespace

Status EsapiTpm::ForEachCapability(
    TPM2_CAP cap, uint32_t first, uint32_t last,
    const std::function<uint32_t(const TPMU_CAPABILITIES&)>& take) {
  uint32_t next = first;
  for (int page = 0; page < 64 && next <= last; ++page) {
    TPMI_YES_NO more = TPM2_NO;
    TPMS_CAPABILITY_DATA* raw = nullptr;
    Status s =
        Cmd("GetCapability",
            Esys_GetCapability(ctx(), ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                               cap, next, 256, &more, &raw));
    EsysPtr<TPMS_CAPABILITY_DATA> data(raw);
    if (!s.ok()) return s;
    const uint32_t after = take(data->data);
    if (more != TPM2_YES || after <= next) return OkStatus();
    next = after;
  }
  return OkStatus();
}

StatusOr<uint32_t> EsapiTpm::NvIndexSize(uint32_t handle) {
  KGR_ASSIGN_OR_RETURN(ScopedTr nv, OpenHandle(handle));
  KGR_ASSIGN_OR_RETURN(EsysPtr<TPM2B_NV_PUBLIC> pub, ReadNvPublic(nv.get()));
  return pub->nvPublic.dataSize;
}

StatusOr<std::optional<bool>> EsapiTpm::BootPcrsZero() {
  TPML_PCR_SELECTION pcrs{};
  pcrs.count = 1;
  pcrs.pcrSelections[0].hash = TPM2_ALG_SHA256;
  pcrs.pcrSelections[0].sizeofSelect = 3;
  pcrs.pcrSelections[0].pcrSelect[0] = 0xFF;  // PCRs 0-7
  UINT32 counter = 0;
  TPML_PCR_SELECTION* out_sel = nullptr;
  TPML_DIGEST* values = nullptr;
  Status s = Cmd("PCR_Read",
                 Esys_PCR_Read(ctx(), ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                               &pcrs, &counter, &out_sel, &values));
  EsysPtr<TPML_PCR_SELECTION> sel(out_sel);
  EsysPtr<TPML_DIGEST> digests(values);
  if (!s.ok()) return s;
  if (digests->count == 0) return std::optional<bool>();  // no sha256 bank
  for (uint32_t i = 0; i < digests->count; ++i) {
    const TPM2B_DIGEST& d = digests->digests[i];
    if (std::any_of(d.buffer, d.buffer + d.size,
                    [](uint8_t b) { return b != 0; })) {
      return std::optional<bool>(false);
    }
  }
  return std::optional<bool>(true);
}

Status EsapiTpm::ReadCapabilityLists(TpmCapabilities& caps) {
  KGR_RETURN_IF_ERROR(ForEachCapability(
      TPM2_CAP_ALGS, TPM2_ALG_FIRST, 0xFFFF, [&](const TPMU_CAPABILITIES& d) {
        uint32_t last = 0;
        for (uint32_t i = 0; i < d.algorithms.count; ++i) {
          last = d.algorithms.algProperties[i].alg;
          caps.algorithms.insert(static_cast<uint16_t>(last));
        }
        return last + 1;
      }));
  KGR_RETURN_IF_ERROR(ForEachCapability(
      TPM2_CAP_ECC_CURVES, 0, 0xFFFF, [&](const TPMU_CAPABILITIES& d) {
        uint32_t last = 0;
        for (uint32_t i = 0; i < d.eccCurves.count; ++i) {
          last = d.eccCurves.eccCurves[i];
          caps.ecc_curves.insert(static_cast<uint16_t>(last));
        }
        return last + 1;
      }));
  return ForEachCapability(TPM2_CAP_COMMANDS, TPM2_CC_FIRST, 0xFFFF,
                           [&](const TPMU_CAPABILITIES& d) {
                             uint32_t last = 0;
                             for (uint32_t i = 0; i < d.command.count; ++i) {
                               last = d.command.commandAttributes[i] &
                                      TPMA_CC_COMMANDINDEX_MASK;
                               caps.commands.insert(last);
                             }
                             return last + 1;
                           });
}

Status EsapiTpm::ReadCapabilityProperties(TpmCapabilities& caps) {
  for (uint32_t group : {TPM2_PT_FIXED, TPM2_PT_VAR}) {
    KGR_RETURN_IF_ERROR(ForEachCapability(
        TPM2_CAP_TPM_PROPERTIES, group, group + 0xFF,
        [&](const TPMU_CAPABILITIES& d) {
          uint32_t last = 0;
          for (uint32_t i = 0; i < d.tpmProperties.count; ++i) {
            TakeProperty(d.tpmProperties.tpmProperty[i], caps);
            last = d.tpmProperties.tpmProperty[i].property;
          }
          return last + 1;
        }));
  }
  return OkStatus();
}

StatusOr<TpmCapabilities> EsapiTpm::Capabilities() {
  TpmCapabilities caps;
  KGR_RETURN_IF_ERROR(ReadCapabilityLists(caps));
  KGR_RETURN_IF_ERROR(ReadCapabilityProperties(caps));
  std::vector<uint32_t> nv_handles;
  KGR_RETURN_IF_ERROR(ForEachCapability(
      TPM2_CAP_HANDLES, TPM2_HT_NV_INDEX << 24,
      (TPM2_HT_NV_INDEX << 24) | 0xFFFFFF, [&](const TPMU_CAPABILITIES& d) {
        uint32_t last = 0;
        for (uint32_t i = 0; i < d.handles.count; ++i) {
          last = d.handles.handle[i];
          nv_handles.push_back(last);
        }
        return last + 1;
      }));
  for (uint32_t handle : nv_handles) {
    KGR_ASSIGN_OR_RETURN(uint32_t size, NvIndexSize(handle));
    caps.nv_bytes_defined += size;
    for (int i = 0; i < kNvSlotCount; ++i) {
      if (handle == layout::NvHandle(static_cast<NvSlot>(i)))
        ++caps.kgr_nv_slots;
    }
  }
  for (uint32_t handle :
       {layout::kSrkHandle, layout::kAnkHandle, layout::kKedkHandle}) {
    KGR_ASSIGN_OR_RETURN(bool exists, HandleExists(handle));
    if (exists) ++caps.kgr_persistent;
  }
  KGR_ASSIGN_OR_RETURN(caps.boot_pcrs_zero, BootPcrsZero());
  return caps;
}

}  // namespace kgr::tpm_internal
