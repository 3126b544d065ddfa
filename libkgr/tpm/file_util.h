// Small POSIX file helpers for the TPM layer's state directory (kgr_tpm does
// not depend on kgr_store). Errors: NOT_FOUND for a missing file,
// RESOURCE_EXHAUSTED for a full disk, INTERNAL otherwise (message names the
// path and the errno text; never the content).
#ifndef KGR_TPM_FILE_UTIL_H_
#define KGR_TPM_FILE_UTIL_H_

#include <span>
#include <string>

#include "kgr/secret.h"
#include "kgr/status.h"

namespace kgr::tpm_internal {

// Creates `dir` (one level) with `mode` if missing.
Status EnsureDir(const std::string& dir, int mode);

// Replaces `path` atomically and durably with `data`: writes `path`.tmp with
// `mode` (umask ignored), fsyncs it, renames it over `path`, fsyncs the
// directory. On failure the old content is intact and the temporary removed.
Status WriteFileAtomic(const std::string& path, std::span<const uint8_t> data,
                       int mode);

// The whole content of `path` (at most `max_size` bytes, else DATA_LOSS),
// held as a secret.
StatusOr<SecretBytes> ReadSecretFile(const std::string& path, size_t max_size);

// `dir` + "/" + `name`.
std::string JoinPath(const std::string& dir, const std::string& name);

}  // namespace kgr::tpm_internal

#endif  // KGR_TPM_FILE_UTIL_H_
