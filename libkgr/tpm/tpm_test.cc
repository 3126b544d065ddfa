#include "kgr/tpm.h"

#include <stdlib.h>

#include <string>

#include "gtest/gtest.h"
#include "tpm/test_util.h"

namespace kgr {
namespace {

class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    const char* old = std::getenv(name);
    if (old != nullptr) old_ = old;
    had_ = old != nullptr;
    if (value != nullptr) {
      ::setenv(name, value, 1);
    } else {
      ::unsetenv(name);
    }
  }
  ~ScopedEnv() {
    if (had_) {
      ::setenv(name_, old_.c_str(), 1);
    } else {
      ::unsetenv(name_);
    }
  }

 private:
  const char* name_;
  std::string old_;
  bool had_ = false;
};

TEST(ResolveTcti, FlagWins) {
  ScopedEnv env("KGR_TCTI", "swtpm:host=127.0.0.1,port=9");
  EXPECT_EQ(ResolveTcti("none"), "none");
  EXPECT_EQ(ResolveTcti("device:/dev/tpm0"), "device:/dev/tpm0");
}

TEST(ResolveTcti, EnvironmentNext) {
  ScopedEnv env("KGR_TCTI", "swtpm:host=127.0.0.1,port=9");
  EXPECT_EQ(ResolveTcti(""), "swtpm:host=127.0.0.1,port=9");
}

TEST(ResolveTcti, DefaultLast) {
  ScopedEnv env("KGR_TCTI", nullptr);
  EXPECT_EQ(ResolveTcti(""), "device:/dev/tpmrm0");
  ScopedEnv empty("KGR_TCTI", "");
  EXPECT_EQ(ResolveTcti(""), "device:/dev/tpmrm0");
}

TEST(NvSlotName, AllDistinct) {
  EXPECT_EQ(NvSlotName(NvSlot::kIdentity), "identity");
  EXPECT_EQ(NvSlotName(NvSlot::kNodeKeys), "node-keys");
  EXPECT_EQ(NvSlotName(NvSlot::kNtag), "ntag");
  EXPECT_EQ(NvSlotName(NvSlot::kKsKeys), "ks-keys");
  EXPECT_EQ(NvSlotName(static_cast<NvSlot>(9)), "invalid");
}

TEST(OpenTpm, NoneIsSoftware) {
  tpm_test::TempDir dir;
  TpmOptions options;
  options.tcti = "none";
  options.state_dir = dir.path();
  auto tpm = OpenTpm(options);
  ASSERT_TRUE(tpm.ok()) << tpm.status().ToString();
  EXPECT_EQ((*tpm)->kind(), "software");
}

TEST(OpenTpm, EmptyStateDirRefused) {
  TpmOptions options;
  options.tcti = "none";
  EXPECT_EQ(OpenTpm(options).status().code(), StatusCode::kInvalidArgument);
  options.tcti = "swtpm:host=127.0.0.1,port=1";
  EXPECT_EQ(OpenTpm(options).status().code(), StatusCode::kInvalidArgument);
}

TEST(OpenTpm, EmptyTctiRefused) {
  tpm_test::TempDir dir;
  TpmOptions options;
  options.tcti = "";
  options.state_dir = dir.path();
  EXPECT_EQ(OpenTpm(options).status().code(), StatusCode::kInvalidArgument);
}

// Port 1 on loopback has no listener: the connection is refused.
TEST(OpenTpm, UnreachableTpmIsUnavailable) {
  tpm_test::TempDir dir;
  TpmOptions options;
  options.tcti = "swtpm:host=127.0.0.1,port=1";
  options.state_dir = dir.path();
  auto tpm = OpenTpm(options);
  ASSERT_FALSE(tpm.ok());
  EXPECT_EQ(tpm.status().code(), StatusCode::kUnavailable)
      << tpm.status().ToString();
  EXPECT_NE(tpm.status().message().find("swtpm:host=127.0.0.1,port=1"),
            std::string::npos)
      << tpm.status().ToString();
}

TEST(OpenTpm, MissingDeviceIsUnavailable) {
  tpm_test::TempDir dir;
  TpmOptions options;
  options.tcti = "device:" + dir.path() + "/no-such-tpm";
  options.state_dir = dir.path();
  auto tpm = OpenTpm(options);
  ASSERT_FALSE(tpm.ok());
  EXPECT_EQ(tpm.status().code(), StatusCode::kUnavailable)
      << tpm.status().ToString();
}

}  // namespace
}  // namespace kgr
