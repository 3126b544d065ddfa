// The test-only crypto entry points (fixed IVs, a key pair's insides) stay
// out of production code: no source outside the tests names them.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace kgr {
namespace {

namespace fs = std::filesystem;

fs::path TestOnlySourceDir() {
  const char* src = std::getenv("KGR_SOURCE_DIR");
  return src != nullptr ? fs::path(src)
                        : fs::path(__FILE__).parent_path().parent_path() / "..";
}

// Test code: *_test.cc, *_itest.cc, *_fuzz.cc, the fixtures (*_test.h,
// *_fixture.h), libkgr/testing/ and tests/.
bool IsTestCode(const fs::path& rel) {
  const std::string p = rel.generic_string();
  const std::string name = rel.filename().string();
  for (const char* suffix :
       {"_test.cc", "_itest.cc", "_fuzz.cc", "_test.h", "_fixture.h"}) {
    const std::string s = suffix;
    if (name.size() >= s.size() &&
        name.compare(name.size() - s.size(), s.size(), s) == 0) {
      return true;
    }
  }
  return p.starts_with("libkgr/testing/") || p.starts_with("tests/");
}

TEST(TestOnly, ProductionSourcesNeverNameTheTestOnlyCryptoEntryPoints) {
  const fs::path root = TestOnlySourceDir();
  ASSERT_TRUE(fs::exists(root / "libkgr/crypto/crypto.cc")) << root;
  // crypto/ itself: the hook behind FixedIvScope, and the friend that
  // lets the tests see a key pair's insides.
  const std::vector<std::string> allowed = {"libkgr/crypto/crypto.cc",
                                            "libkgr/crypto/internal.h",
                                            "libkgr/include/kgr/crypto.h"};
  std::vector<std::string> offenders;
  size_t scanned = 0;
  for (const char* dir : {"libkgr", "ks-node", "n-node", "ac-node"}) {
    if (!fs::exists(root / dir)) continue;
    for (const auto& e : fs::recursive_directory_iterator(root / dir)) {
      const fs::path rel = fs::relative(e.path(), root);
      const std::string ext = rel.extension().string();
      if (!e.is_regular_file() || (ext != ".cc" && ext != ".h")) continue;
      if (IsTestCode(rel)) continue;
      ++scanned;
      std::ifstream in(e.path());
      std::stringstream text;
      text << in.rdbuf();
      const std::string s = text.str();
      if (std::find(allowed.begin(), allowed.end(), rel.generic_string()) !=
          allowed.end()) {
        continue;
      }
      for (const char* name :
           {"crypto_testing", "crypto/internal.h", "FixedIvScope",
            "SetThreadFixedIv", "KeyInternals"}) {
        if (s.find(name) != std::string::npos) {
          offenders.push_back(rel.generic_string() + " names " + name);
        }
      }
    }
  }
  EXPECT_GT(scanned, 50u);
  EXPECT_TRUE(offenders.empty()) << ::testing::PrintToString(offenders);
}

}  // namespace
}  // namespace kgr
