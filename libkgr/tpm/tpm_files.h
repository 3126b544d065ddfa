// The TPM layer's files (NV auth file, software store), through the
// FileSystem of TpmOptions so that they can be fault-injected like every
// other file. Errors are those of FileSystem: NOT_FOUND for a missing file,
// RESOURCE_EXHAUSTED for a full disk; messages name the path, never the
// content.
#ifndef KGR_TPM_TPM_FILES_H_
#define KGR_TPM_TPM_FILES_H_

#include <string>

#include "kgr/filesystem.h"
#include "kgr/secret.h"
#include "kgr/status.h"
#include "kgr/tpm.h"

namespace kgr::tpm_internal {

// options.fs, or the real file system when it is null.
FileSystem& FilesOf(const TpmOptions& options);

// The whole content of `path` (at most `max_size` bytes, else DATA_LOSS),
// held as a secret (the read buffer is wiped).
StatusOr<SecretBytes> ReadSecretFile(FileSystem& fs, const std::string& path,
                                     size_t max_size);

// `dir` + "/" + `name`.
std::string JoinPath(const std::string& dir, const std::string& name);

}  // namespace kgr::tpm_internal

#endif  // KGR_TPM_TPM_FILES_H_
