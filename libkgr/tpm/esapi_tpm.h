// EsapiTpm: the Tpm interface on a real TPM 2.0 (or swtpm) through tpm2-tss
// ESAPI. docs/tpm.md describes the key hierarchy, NV indices and
// authorization scheme it creates.
#ifndef KGR_TPM_ESAPI_TPM_H_
#define KGR_TPM_ESAPI_TPM_H_

#include <memory>

#include "kgr/status.h"
#include "kgr/tpm.h"

namespace kgr {

// Connects to the TPM named by `options.tcti`, passed verbatim to
// Tss2_TctiLdr_Initialize. Creates `options.state_dir` (mode 0700) if
// missing. UNAVAILABLE if the TCTI cannot connect; INVALID_ARGUMENT if
// state_dir is empty.
StatusOr<std::unique_ptr<Tpm>> OpenEsapiTpm(const TpmOptions& options);

}  // namespace kgr

#endif  // KGR_TPM_ESAPI_TPM_H_
