// RunCrlHookCommand: the hook sees the CRL's path in KGR_CRL_FILE, whatever
// characters the path holds, and a failing hook is UNAVAILABLE.
#include "daemon/crl_hook.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace kgr {
namespace {

TEST(CrlHookTest, HookSeesTheCrlPathAndItsFailureIsReported) {
  char tmpl[] = "/tmp/kgr_crl_hook_test.XXXXXX";
  const std::string dir = mkdtemp(tmpl);
  const std::string crl = dir + "/it's a \"crl\" $HOME.pem";
  const std::string out = dir + "/seen";
  ASSERT_TRUE(
      RunCrlHookCommand("printf '%s' \"$KGR_CRL_FILE\" > " + out, crl).ok());
  std::ifstream in(out);
  std::stringstream seen;
  seen << in.rdbuf();
  EXPECT_EQ(seen.str(), crl);

  Status failed = RunCrlHookCommand("exit 3", crl);
  EXPECT_EQ(failed.code(), StatusCode::kUnavailable);
  EXPECT_NE(failed.message().find("'exit 3' failed"), std::string::npos)
      << failed.ToString();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace kgr
