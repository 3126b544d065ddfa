// Helpers for the unit tests of libkgr/tpm.
#ifndef KGR_TPM_TEST_UTIL_H_
#define KGR_TPM_TEST_UTIL_H_

#include <stdlib.h>

#include <filesystem>
#include <string>

namespace kgr::tpm_test {

// A fresh directory under $TMPDIR (or /tmp), removed with everything in it
// when the object goes.
class TempDir {
 public:
  TempDir() {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl =
        std::string(base != nullptr ? base : "/tmp") + "/kgr-tpm-test-XXXXXX";
    if (::mkdtemp(tmpl.data()) != nullptr) path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace kgr::tpm_test

#endif  // KGR_TPM_TEST_UTIL_H_
