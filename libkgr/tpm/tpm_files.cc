#include "tpm/tpm_files.h"

namespace kgr::tpm_internal {

FileSystem& FilesOf(const TpmOptions& options) {
  return options.fs != nullptr ? *options.fs : *DefaultFileSystem();
}

StatusOr<SecretBytes> ReadSecretFile(FileSystem& fs, const std::string& path,
                                     size_t max_size) {
  KGR_ASSIGN_OR_RETURN(Bytes raw, fs.ReadFile(path));
  if (raw.size() > max_size) {
    WipeVector(raw);
    return DataLossError(path + ": larger than " + std::to_string(max_size) +
                         " bytes");
  }
  SecretBytes secret(raw);
  WipeVector(raw);
  return secret;
}

std::string JoinPath(const std::string& dir, const std::string& name) {
  return dir.empty() || dir.back() == '/' ? dir + name : dir + "/" + name;
}

}  // namespace kgr::tpm_internal
