// EsapiTpm: handles, sessions, random numbers and the one place where a
// command's return code becomes a Status (EsapiTpm::Cmd); the keys are in
// esapi_keys.cc, the NV indices in esapi_nv.cc.
#include "tpm/esapi_tpm.h"

#include <tss2/tss2_esys.h>
#include <tss2/tss2_tctildr.h>

#include <algorithm>
#include <cstdio>
#include <string>
#include <utility>

#include "tpm/esapi_internal.h"
#include "tpm/tpm_files.h"
#include "tpm/tss_status.h"

namespace kgr {
namespace tpm_internal {
namespace {

// GetRandom chunk: every TPM returns at least a SHA-256 digest's worth.
constexpr uint16_t kRandomChunk = 32;

}  // namespace

std::string HandleHex(uint32_t handle) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", handle);
  return buf;
}

std::string SlotLabel(NvSlot slot) {
  return "NV slot " + std::string(NvSlotName(slot)) + " (" +
         HandleHex(layout::NvHandle(slot)) + ")";
}

void ScopedTr::Reset() {
  if (tr_ != ESYS_TR_NONE && tpm_ != nullptr) tpm_->Release(tr_, kind_);
  tr_ = ESYS_TR_NONE;
}

StatusOr<bool> EsapiTpm::HandleExists(uint32_t handle) {
  TPMI_YES_NO more = TPM2_NO;
  TPMS_CAPABILITY_DATA* raw = nullptr;
  Status s =
      Cmd("GetCapability(handles)",
          Esys_GetCapability(ctx(), ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                             TPM2_CAP_HANDLES, handle, 1, &more, &raw));
  EsysPtr<TPMS_CAPABILITY_DATA> data(raw);
  if (!s.ok()) return s;
  return data->data.handles.count > 0 && data->data.handles.handle[0] == handle;
}

StatusOr<ScopedTr> EsapiTpm::OpenHandle(uint32_t handle) {
  ESYS_TR tr = ESYS_TR_NONE;
  KGR_RETURN_IF_ERROR(
      Cmd("TR_FromTPMPublic(" + HandleHex(handle) + ")",
          Esys_TR_FromTPMPublic(ctx(), handle, ESYS_TR_NONE, ESYS_TR_NONE,
                                ESYS_TR_NONE, &tr)));
  return ScopedTr(this, tr, ScopedTr::kClose);
}

StatusOr<EsysPtr<TPM2B_PUBLIC>> EsapiTpm::ReadPublic(ESYS_TR tr) {
  TPM2B_PUBLIC* pub = nullptr;
  TPM2B_NAME* name = nullptr;
  TPM2B_NAME* qualified = nullptr;
  Status s =
      Cmd("ReadPublic", Esys_ReadPublic(ctx(), tr, ESYS_TR_NONE, ESYS_TR_NONE,
                                        ESYS_TR_NONE, &pub, &name, &qualified));
  EsysPtr<TPM2B_PUBLIC> out(pub);
  Esys_Free(name);
  Esys_Free(qualified);
  if (!s.ok()) return s;
  return out;
}

StatusOr<SecretBytes> EsapiTpm::GetRandom(size_t n) {
  SecretBytes out;
  while (out.size() < n) {
    const uint16_t want =
        static_cast<uint16_t>(std::min<size_t>(kRandomChunk, n - out.size()));
    TPM2B_DIGEST* raw = nullptr;
    Status s =
        Cmd("GetRandom", Esys_GetRandom(ctx(), ESYS_TR_NONE, ESYS_TR_NONE,
                                        ESYS_TR_NONE, want, &raw));
    EsysSecretPtr<TPM2B_DIGEST> chunk(raw);
    if (!s.ok()) return s;
    if (chunk->size == 0 || chunk->size > want) {
      return InternalError("GetRandom: TPM returned " +
                           std::to_string(chunk->size) + " bytes for " +
                           std::to_string(want));
    }
    out.Append({chunk->buffer, chunk->size});
  }
  return out;
}

StatusOr<ScopedTr> EsapiTpm::StartSession(TPM2_SE type, bool salted) {
  ESYS_TR tpm_key = ESYS_TR_NONE;
  if (salted) {
    KGR_ASSIGN_OR_RETURN(tpm_key, Srk());
  }
  TPMT_SYM_DEF sym{};
  if (type == TPM2_SE_TRIAL) {
    sym.algorithm = TPM2_ALG_NULL;
  } else {
    sym.algorithm = TPM2_ALG_AES;
    sym.keyBits.aes = 128;
    sym.mode.aes = TPM2_ALG_CFB;
  }
  ESYS_TR session = ESYS_TR_NONE;
  KGR_RETURN_IF_ERROR(
      Cmd("StartAuthSession",
          Esys_StartAuthSession(ctx(), tpm_key, ESYS_TR_NONE, ESYS_TR_NONE,
                                ESYS_TR_NONE, ESYS_TR_NONE, nullptr, type, &sym,
                                TPM2_ALG_SHA256, &session)));
  ScopedTr out(this, session, ScopedTr::kFlush);
  KGR_RETURN_IF_ERROR(
      SetSessionAttributes(out.get(), TPMA_SESSION_CONTINUESESSION));
  return out;
}

Status EsapiTpm::SetSessionAttributes(ESYS_TR session,
                                      TPMA_SESSION attributes) {
  return TssStatus(
      Esys_TRSess_SetAttributes(
          ctx(), session, attributes | TPMA_SESSION_CONTINUESESSION, 0xFF),
      "TRSess_SetAttributes");
}

}  // namespace tpm_internal

StatusOr<std::unique_ptr<Tpm>> OpenEsapiTpm(const TpmOptions& options) {
  if (options.state_dir.empty()) {
    return InvalidArgumentError("TPM state_dir is empty");
  }
  KGR_RETURN_IF_ERROR(
      tpm_internal::FilesOf(options).CreateDir(options.state_dir, 0700));
  TSS2_TCTI_CONTEXT* tcti_raw = nullptr;
  KGR_RETURN_IF_ERROR(
      TssStatus(Tss2_TctiLdr_Initialize(options.tcti.c_str(), &tcti_raw),
                "Tss2_TctiLdr_Initialize(\"" + options.tcti + "\")"));
  std::unique_ptr<TSS2_TCTI_CONTEXT, tpm_internal::TctiDeleter> tcti(tcti_raw);
  ESYS_CONTEXT* esys_raw = nullptr;
  KGR_RETURN_IF_ERROR(TssStatus(Esys_Initialize(&esys_raw, tcti.get(), nullptr),
                                "Esys_Initialize"));
  return std::unique_ptr<Tpm>(
      new tpm_internal::EsapiTpm(options, tcti.release(), esys_raw));
}

}  // namespace kgr
