#include <gtest/gtest.h>

#include "daemon/app_router.h"

namespace kgr {
namespace {

TEST(AppAccess, UnlistedOwnerMayUseEveryPeerOthersNothing) {
  auto a = ParseAppAccess(nlohmann::json(), 1000);
  ASSERT_TRUE(a.ok());
  EXPECT_TRUE(a->Admits(1000));
  EXPECT_TRUE(a->Allows(1000, 0x1234));
  EXPECT_FALSE(a->Admits(1001));
  EXPECT_FALSE(a->Allows(1001, 0x1234));
}

TEST(AppAccess, ListedUsersGetTheirPeers) {
  auto a = ParseAppAccess({{"1000", nlohmann::json::array({"0000000a"})},
                           {"1001", "*"},
                           {"root", nlohmann::json::array()}},
                          1000);
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_TRUE(a->Allows(1000, 0xa));
  EXPECT_FALSE(a->Allows(1000, 0xb)) << "the owner listed gets its list only";
  EXPECT_TRUE(a->Allows(1001, 0xb));
  EXPECT_TRUE(a->Admits(0));
  EXPECT_FALSE(a->Allows(0, 0xa));
}

TEST(AppAccess, BadEntriesAreNamed) {
  EXPECT_EQ(ParseAppAccess({{"1000", "all"}}, 0).status().message(),
            "config key \"api.users\" entry '1000': not \"*\" or a list of "
            "N_IDs");
  EXPECT_EQ(ParseAppAccess({{"1000", nlohmann::json::array({"xyz"})}}, 0)
                .status()
                .message(),
            "config key \"api.users\" entry '1000': not an N_ID (8 hex "
            "digits): \"xyz\"");
  EXPECT_EQ(ParseAppAccess({{"no-such-user-kgr", "*"}}, 0).status().message(),
            "config key \"api.users\": no user named 'no-such-user-kgr'");
  EXPECT_FALSE(ParseAppAccess(nlohmann::json::array(), 0).ok());
}

}  // namespace
}  // namespace kgr
