#include "daemon/reload.h"

#include <spdlog/spdlog.h>

namespace kgr {

std::vector<std::string> RestartOnlyChanges(const DaemonOptions& running,
                                            const DaemonOptions& loaded) {
  std::vector<std::string> keys;
  auto check = [&keys](bool same, const char* key) {
    if (!same) keys.push_back(key);
  };
  const BrokerOptions& a = running.broker;
  const BrokerOptions& b = loaded.broker;
  check(running.state_dir == loaded.state_dir, "state_dir");
  check(running.tcti == loaded.tcti, "tcti");
  check(a.address == b.address, "broker");
  check(a.client == b.client, "mqtt_client");
  check(a.qos == b.qos, "mqtt_qos");
  check(a.ca_file == b.ca_file, "tls.ca_file");
  check(a.cert_file == b.cert_file, "tls.cert_file");
  check(a.key_file == b.key_file, "tls.key_file");
  check(running.pcr_policy == loaded.pcr_policy, "pcr_policy");
  check(running.journal_prealloc_kb == loaded.journal_prealloc_kb,
        "journal_prealloc_kb");
  check(running.metrics_listen == loaded.metrics_listen, "metrics_listen");
  return keys;
}

void LogReloadRefused(const char* who, const Status& why) {
  spdlog::error("{}: reload refused, the running settings stay: {}", who,
                why.message());
}

void LogRestartOnly(const char* who, const std::vector<std::string>& keys) {
  if (keys.empty()) return;
  std::string list;
  for (const std::string& k : keys) list += (list.empty() ? "" : ", ") + k;
  spdlog::warn("{}: changed settings that need a restart (not applied): {}",
               who, list);
}

}  // namespace kgr
