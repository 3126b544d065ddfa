// The one choke point where a tpm2-tss return code becomes a Status.
#ifndef KGR_TPM_TSS_STATUS_H_
#define KGR_TPM_TSS_STATUS_H_

#include <tss2/tss2_common.h>

#include <string_view>

#include "kgr/status.h"

namespace kgr {

// The StatusCode for `rc`: NOT_FOUND for an absent handle or NV index (or
// one never written), PERMISSION_DENIED for failed authorizations and DA
// lockout, ALREADY_EXISTS for a defined NV index, RESOURCE_EXHAUSTED for a
// full TPM (NV space, object or session slots), UNAVAILABLE for TCTI
// connection/IO failures and TPM "retry later" warnings, UNAUTHENTICATED
// for a response HMAC that did not verify, INTERNAL for the rest.
StatusCode ClassifyTssRc(TSS2_RC rc);

// OK for TSS2_RC_SUCCESS; otherwise "<what>: <Tss2_RC_Decode text>
// (0x<rc>)" with the code from ClassifyTssRc.
Status TssStatus(TSS2_RC rc, std::string_view what);

}  // namespace kgr

#endif  // KGR_TPM_TSS_STATUS_H_
