// The shared mqtt_qos row (kMqttQosSetting) that kgr-ks, kgr-ac and
// kgr-node take: 0 or 1, default 1, anything else refused in one line.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "kgr/cli.h"

namespace kgr {
namespace {

constexpr SettingSpec kQosSpecs[] = {kMqttClientSetting, kMqttQosSetting};

StatusOr<CommandLine> Parse(std::vector<std::string> args,
                            const std::string& config = "") {
  std::string path;
  if (!config.empty()) {
    path = (std::filesystem::temp_directory_path() /
            ("kgr-qos-" + std::to_string(::getpid()) + ".json"))
               .string();
    std::ofstream(path) << config;
    args.push_back("--config");
    args.push_back(path);
  }
  std::vector<char*> argv{const_cast<char*>("prog")};
  for (auto& a : args) argv.push_back(a.data());
  auto r = ParseCommandLine(static_cast<int>(argv.size()), argv.data(), kQosSpecs);
  if (!path.empty()) std::filesystem::remove(path);
  return r;
}

TEST(MqttQosSettingTest, ZeroOrOneFromFlagOrConfigDefaultOne) {
  auto d = Parse({"run"});
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(d->Int("mqtt_qos"), 1u);
  EXPECT_FALSE(d->Given("mqtt_qos"));
  auto f = Parse({"run", "--mqtt-qos", "0"});
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  EXPECT_EQ(f->Int("mqtt_qos"), 0u);
  auto c = Parse({"run"}, R"({"mqtt_qos": 0})");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->Int("mqtt_qos"), 0u);
  auto both = Parse({"run", "--mqtt-qos=1"}, R"({"mqtt_qos": 0})");
  ASSERT_TRUE(both.ok()) << both.status().ToString();
  EXPECT_EQ(both->Int("mqtt_qos"), 1u);
}

TEST(MqttQosSettingTest, AnythingElseIsRefusedInOneLineNamingTheKey) {
  for (const char* v : {"2", "-1", "x", "", "0.5", "01x", "1e0"}) {
    auto r = Parse({"run", "--mqtt-qos", v});
    ASSERT_FALSE(r.ok()) << v;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(r.status().message().rfind(
                  "flag --mqtt-qos: must be an integer from 0 to 1 (got '", 0),
              0u)
        << r.status().message();
    EXPECT_EQ(r.status().message().find('\n'), std::string::npos);
  }
  for (const char* v : {"2", "-1", "0.5", "\"0\"", "true", "null", "[0]"}) {
    auto r = Parse({"run"}, std::string("{\"mqtt_qos\": ") + v + "}");
    ASSERT_FALSE(r.ok()) << v;
    EXPECT_EQ(r.status().message().rfind(
                  "config key \"mqtt_qos\": must be an integer from 0 to 1", 0),
              0u)
        << r.status().message();
    EXPECT_EQ(r.status().message().find('\n'), std::string::npos);
  }
}

}  // namespace
}  // namespace kgr
