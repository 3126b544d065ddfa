#include "daemon/reload.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace kgr {
namespace {

using Keys = std::vector<std::string>;

TEST(ReloadTest, SameOptionsNeedNoRestart) {
  DaemonOptions a;
  a.state_dir = "/var/lib/kgr-ks";
  a.broker.address = "broker:8883";
  DaemonOptions b = a;
  b.log_level = "debug";  // reloads
  EXPECT_EQ(RestartOnlyChanges(a, b), Keys{});
}

TEST(ReloadTest, EveryRestartOnlySettingIsNamed) {
  DaemonOptions a;
  DaemonOptions b;
  b.state_dir = "/elsewhere";
  b.tcti = "none";
  b.broker.address = "other:8883";
  b.broker.client = MqttClient::kPaho;
  b.broker.qos = 0;
  b.broker.ca_file = "ca";
  b.broker.cert_file = "cert";
  b.broker.key_file = "key";
  b.pcr_policy = true;
  b.journal_prealloc_kb = 0;
  EXPECT_EQ(RestartOnlyChanges(a, b),
            (Keys{"state_dir", "tcti", "broker", "mqtt_client", "mqtt_qos",
                  "tls.ca_file", "tls.cert_file", "tls.key_file", "pcr_policy",
                  "journal_prealloc_kb"}));
}

TEST(ReloadTest, WithoutAReloaderTheReloadIsRefused) {
  struct Unregistered {};
  StatusOr<Unregistered> r = ReloadOptions<Unregistered>();
  EXPECT_FALSE(r.ok());
}

}  // namespace
}  // namespace kgr
