#include "kgr/cli.h"

#include <gtest/gtest.h>

#include <string>

namespace kgr {
namespace {

TEST(NumberSetting, FlagThenConfigThenFallback) {
  Flags f;
  nlohmann::json c = {{"a", 7}, {"p", {{"b", "8"}}}};
  EXPECT_EQ(*NumberSetting(f, c, "a", "a", "1"), 7u);
  EXPECT_EQ(*NumberSetting(f, c, "b", "p.b", "1"), 8u);
  EXPECT_EQ(*NumberSetting(f, c, "x", "x", "1"), 1u);
  f.values["a"] = "9";
  EXPECT_EQ(*NumberSetting(f, c, "a", "a", "1"), 9u);
  EXPECT_EQ(*NumberSetting(f, c, "a", "a", "1", 9), 9u);
}

TEST(NumberSetting, AnythingButDecimalDigitsWithinTheBoundIsAClearError) {
  for (const std::string bad :
       {"", "-5", "12abc", " 12", "1e3", "0x10", "+3", "1234567890123456"}) {
    Flags f;
    f.values["n"] = bad;
    auto v = NumberSetting(f, nlohmann::json::object(), "n", "some_key", "1");
    ASSERT_FALSE(v.ok()) << "'" << bad << "'";
    EXPECT_EQ(v.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(v.status().message().find("some_key"), std::string::npos);
  }
  nlohmann::json negative = {{"n", -5}};
  EXPECT_FALSE(NumberSetting(Flags{}, negative, "n", "n", "1").ok());
  Flags f;
  f.values["n"] = "4097";
  auto over = NumberSetting(f, nlohmann::json::object(), "n", "n", "1", 4096);
  ASSERT_FALSE(over.ok());
  EXPECT_NE(over.status().message().find("at most 4096"), std::string::npos);
}

}  // namespace
}  // namespace kgr
