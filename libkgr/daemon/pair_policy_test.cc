#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "kgr/node_daemon.h"

namespace kgr {
namespace {

KeyPolicy NodeWide() {
  KeyPolicy p;
  p.max_age_ms = 3'600'000;
  p.max_frames = 1000;
  p.max_bytes = 0;
  return p;
}

TEST(PairPolicyTest, EmptyObjectGivesNoPairs) {
  auto r = ParsePairPolicy(nlohmann::json::object(), NodeWide());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->empty());
}

TEST(PairPolicyTest, LimitsOverrideTheNodeWideOnesPerPeer) {
  auto r =
      ParsePairPolicy(nlohmann::json::parse(R"({"0000000a": {"max_frames": 5,
                                              "max_age_s": 2},
                                "0000000B": {}})"),
                      NodeWide());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->size(), 2u);
  const KeyPolicy& a = r->at(0x0a);
  EXPECT_EQ(a.max_frames, 5u);
  EXPECT_EQ(a.max_age_ms, 2000u);  // seconds in the config
  EXPECT_EQ(a.max_bytes, 0u);      // the node-wide value
  const KeyPolicy& b = r->at(0x0b);
  EXPECT_EQ(b.max_frames, 1000u);
  EXPECT_EQ(b.max_age_ms, 3'600'000u);
}

TEST(PairPolicyTest, ErrorsNameTheConfigKey) {
  struct Case {
    const char* json;
    const char* message;
  };
  const Case cases[] = {
      {R"({"xyz": {}})",
       "config key \"policy.pairs.xyz\": the key must be an N_ID (8 hex "
       "digits)"},
      {R"({"00000000": {}})",
       "config key \"policy.pairs.00000000\": the key must be an N_ID (8 hex "
       "digits)"},
      {R"({"0000000a": 5})",
       "config key \"policy.pairs.0000000a\": must be an object"},
      {R"({"0000000a": {"max_frame": 5}})",
       "config key \"policy.pairs.0000000a.max_frame\": unknown key (known "
       "here: max_frames max_bytes max_age_s)"},
  };
  for (const Case& c : cases) {
    auto r = ParsePairPolicy(nlohmann::json::parse(c.json), NodeWide());
    ASSERT_FALSE(r.ok()) << c.json;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << c.json;
    EXPECT_EQ(r.status().message(), c.message) << c.json;
  }
}

TEST(PairPolicyTest, ValuesMustBeIntegersInRange) {
  for (const char* json :
       {R"({"0000000a": {"max_bytes": -1}})",
        R"({"0000000a": {"max_bytes": "5"}})",
        R"({"0000000a": {"max_bytes": 1.5}})",
        R"({"0000000a": {"max_bytes": 1000000000000000}})"}) {
    auto r = ParsePairPolicy(nlohmann::json::parse(json), NodeWide());
    ASSERT_FALSE(r.ok()) << json;
    EXPECT_NE(r.status().message().find("policy.pairs.0000000a.max_bytes"),
              std::string::npos)
        << r.status().message();
  }
}

}  // namespace
}  // namespace kgr
