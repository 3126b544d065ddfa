// Settings rows -> the options the daemon layer takes.
#include "kgr/cli.h"
#include "kgr/daemon.h"
#include "kgr/tpm.h"

namespace kgr {

StatusOr<BrokerOptions> BrokerOptionsFrom(const CommandLine& c) {
  BrokerOptions b;
  b.address = c.Str("broker");
  KGR_ASSIGN_OR_RETURN(b.client, ParseMqttClient(c.Str("mqtt_client")));
  b.qos = static_cast<int>(c.Int("mqtt_qos"));
  b.ca_file = c.Str("tls.ca_file");
  b.cert_file = c.Str("tls.cert_file");
  b.key_file = c.Str("tls.key_file");
  return b;
}

StatusOr<DaemonOptions> DaemonOptionsFrom(const CommandLine& c) {
  DaemonOptions d;
  d.state_dir = c.Str("state_dir");
  d.tcti = ResolveTcti(c.Str("tcti"));
  d.pcr_policy = c.Bool("pcr_policy");
  d.journal_prealloc_kb = c.Int("journal_prealloc_kb");
  d.log_level = c.Str("log_level");
  d.metrics_listen = c.Str("metrics_listen");
  KGR_ASSIGN_OR_RETURN(d.broker, BrokerOptionsFrom(c));
  return d;
}

}  // namespace kgr
