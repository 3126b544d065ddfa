#include "tpm/tss_status.h"

#include <tss2/tss2_rc.h>
#include <tss2/tss2_tpm2_types.h>

#include <cstdio>
#include <string>

namespace kgr {
namespace {

StatusCode ClassifyTpmRc(TSS2_RC rc) {
  TSS2_RC code = rc & 0xFFF;
  if (code & TPM2_RC_FMT1) {
    // Format one: drop the parameter/handle/session number (bits 6, 8-11).
    code &= TPM2_RC_FMT1 | 0x3F;
  }
  switch (code) {
    case TPM2_RC_HANDLE:
    case TPM2_RC_NV_UNINITIALIZED:
      return StatusCode::kNotFound;
    case TPM2_RC_AUTH_FAIL:
    case TPM2_RC_BAD_AUTH:
    case TPM2_RC_POLICY_FAIL:
    case TPM2_RC_PCR_CHANGED:
    case TPM2_RC_NV_AUTHORIZATION:
    case TPM2_RC_NV_LOCKED:
    case TPM2_RC_AUTH_UNAVAILABLE:
    case TPM2_RC_LOCKOUT:
      return StatusCode::kPermissionDenied;
    case TPM2_RC_NV_DEFINED:
      return StatusCode::kAlreadyExists;
    case TPM2_RC_NV_SPACE:
    case TPM2_RC_OBJECT_MEMORY:
    case TPM2_RC_SESSION_MEMORY:
    case TPM2_RC_MEMORY:
    case TPM2_RC_SESSION_HANDLES:
    case TPM2_RC_OBJECT_HANDLES:
      return StatusCode::kResourceExhausted;
    case TPM2_RC_INITIALIZE:
    case TPM2_RC_NV_RATE:
    case TPM2_RC_NV_UNAVAILABLE:
    case TPM2_RC_RETRY:
    case TPM2_RC_YIELDED:
    case TPM2_RC_CANCELED:
    case TPM2_RC_TESTING:
      return StatusCode::kUnavailable;
    default:
      return StatusCode::kInternal;
  }
}

}  // namespace

StatusCode ClassifyTssRc(TSS2_RC rc) {
  if (rc == TSS2_RC_SUCCESS) return StatusCode::kOk;
  const TSS2_RC layer = rc & TSS2_RC_LAYER_MASK;
  if (layer == TSS2_TPM_RC_LAYER || layer == TSS2_RESMGR_TPM_RC_LAYER) {
    return ClassifyTpmRc(rc);
  }
  switch (rc & 0xFFFF) {
    case TSS2_BASE_RC_NO_CONNECTION:
    case TSS2_BASE_RC_TRY_AGAIN:
    case TSS2_BASE_RC_IO_ERROR:
      return StatusCode::kUnavailable;
    case TSS2_BASE_RC_MEMORY:
      return StatusCode::kResourceExhausted;
    case TSS2_BASE_RC_RSP_AUTH_FAILED:
      return StatusCode::kUnauthenticated;
    default:
      return StatusCode::kInternal;
  }
}

Status TssStatus(TSS2_RC rc, std::string_view what) {
  if (rc == TSS2_RC_SUCCESS) return OkStatus();
  char hex[16];
  std::snprintf(hex, sizeof hex, "0x%08x", static_cast<unsigned>(rc));
  const char* text = Tss2_RC_Decode(rc);
  std::string message(what);
  message += ": ";
  message += text != nullptr ? text : "unknown TSS2 error";
  message += " (";
  message += hex;
  message += ")";
  return Status(ClassifyTssRc(rc), std::move(message));
}

}  // namespace kgr
