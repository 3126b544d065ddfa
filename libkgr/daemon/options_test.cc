// Settings rows -> DaemonOptions / BrokerOptions.
#include <gtest/gtest.h>

#include <vector>

#include "kgr/cli.h"
#include "kgr/daemon.h"
#include "kgr/metrics_http.h"
#include "kgr/tpm.h"

namespace kgr {
namespace {

constexpr SettingSpec kSpecs[] = {
    kStateDirSetting,   kTctiSetting,          kBrokerSetting,
    kMqttClientSetting, kMqttQosSetting,       kTlsCaSetting,
    kTlsCertSetting,    kTlsKeySetting,        kJournalPreallocSetting,
    kPcrPolicySetting,  kMetricsListenSetting,
};

StatusOr<CommandLine> Parse(std::vector<const char*> args) {
  args.insert(args.begin(), "prog");
  return ParseCommandLine(static_cast<int>(args.size()),
                          const_cast<char**>(args.data()), kSpecs);
}

TEST(DaemonOptionsTest, EveryFieldFromItsFlag) {
  auto c = Parse({"run",    "--state-dir",
                  "/s",     "--tcti",
                  "none",   "--broker",
                  "h:1883", "--mqtt-client",
                  "paho",   "--mqtt-qos",
                  "0",      "--ca",
                  "ca.pem", "--cert",
                  "c.pem",  "--key",
                  "k.pem",  "--journal-prealloc-kb",
                  "8",      "--pcr-policy"});
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  auto o = DaemonOptionsFrom(*c);
  ASSERT_TRUE(o.ok()) << o.status().ToString();
  EXPECT_EQ(o->state_dir, "/s");
  EXPECT_EQ(o->tcti, "none");
  EXPECT_TRUE(o->pcr_policy);
  EXPECT_EQ(o->journal_prealloc_kb, 8u);
  EXPECT_EQ(o->broker.address, "h:1883");
  EXPECT_EQ(o->broker.client, MqttClient::kPaho);
  EXPECT_EQ(o->broker.qos, 0);
  EXPECT_EQ(o->broker.ca_file, "ca.pem");
  EXPECT_EQ(o->broker.cert_file, "c.pem");
  EXPECT_EQ(o->broker.key_file, "k.pem");
}

TEST(DaemonOptionsTest, MetricsListenOffUnlessSet) {
  auto off = Parse({"run"});
  ASSERT_TRUE(off.ok());
  EXPECT_EQ(DaemonOptionsFrom(*off)->metrics_listen, "");
  auto on = Parse({"run", "--metrics-listen", "127.0.0.1:9464"});
  ASSERT_TRUE(on.ok()) << on.status().ToString();
  EXPECT_EQ(DaemonOptionsFrom(*on)->metrics_listen, "127.0.0.1:9464");
  auto bad = Parse({"run", "--metrics-listen", "9464"});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("metrics"), std::string::npos)
      << bad.status().message();
}

TEST(DaemonOptionsTest, Defaults) {
  auto c = Parse({"run"});
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  auto o = DaemonOptionsFrom(*c);
  ASSERT_TRUE(o.ok()) << o.status().ToString();
  EXPECT_EQ(o->state_dir, "");  // the caller refuses it
  EXPECT_EQ(o->tcti, ResolveTcti(""));
  EXPECT_FALSE(o->pcr_policy);
  EXPECT_EQ(o->journal_prealloc_kb, 256u);
  EXPECT_EQ(o->broker.address, "127.0.0.1:8883");
  EXPECT_EQ(o->broker.client, MqttClient::kMosquitto);
  EXPECT_EQ(o->broker.qos, 1);
  EXPECT_EQ(o->broker.ca_file, "");
}

}  // namespace
}  // namespace kgr
