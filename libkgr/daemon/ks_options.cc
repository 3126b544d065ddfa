// kgr-ks's settings rows -> KsOptions.
#include "daemon/crl_hook.h"
#include "kgr/cli.h"
#include "kgr/cluster.h"
#include "kgr/ks_daemon.h"
#include "kgr/node_certificate.h"

namespace kgr {
namespace {

// node_ca's CRL (docs/operations.md, "Revoke a node"): the serials it
// signs are recorded in the state directory; the CRL file and its hook.
Status NodeCrlOptionsFrom(const CommandLine& c, KsOptions& o) {
  KeyServerOptions& k = o.key_server;
  k.node_crl_file = c.Str("node_ca.crl_file");
  const std::string hook = c.Str("node_ca.crl_hook");
  if (!k.node_crl_file.empty() && c.Str("node_ca.cert_file").empty()) {
    return c.Invalid("node_ca.crl_file", "needs node_ca (--node-ca)");
  }
  if (!hook.empty() && k.node_crl_file.empty()) {
    return c.Invalid("node_ca.crl_hook", "needs node_ca.crl_file (--node-crl)");
  }
  if (!hook.empty()) {
    k.node_crl_written = [hook](const std::string& crl_file) {
      return RunCrlHookCommand(hook, crl_file);
    };
  }
  k.node_certs_file = o.daemon.state_dir + "/node_certs";
  return OkStatus();
}

}  // namespace

StatusOr<KsOptions> KsOptionsFrom(const CommandLine& c) {
  KsOptions o;
  KGR_ASSIGN_OR_RETURN(o.daemon, DaemonOptionsFrom(c));
  o.topic_prefix = c.Str("topic_prefix");
  KeyServerOptions& k = o.key_server;
  k.gen_key_ttl_ms = c.Int("gen_key_ttl_ms");
  const uint64_t rate = c.Int("node_frames_per_s");
  const uint64_t burst = c.Has("node_burst") ? c.Int("node_burst") : 2 * rate;
  if (rate != 0 && burst == 0) {
    return c.Invalid("node_burst", "must be at least 1 with a rate limit");
  }
  k.node_frames_per_s = static_cast<double>(rate);
  k.node_burst = static_cast<double>(burst);
  k.max_pending = c.Int("max_pending");
  k.group_batch_ms = static_cast<uint32_t>(c.Int("group_batch_ms"));
  k.counter_lane = static_cast<uint8_t>(c.Int("cluster.instance"));
  k.share_group = c.Str("cluster.share_group");
  if (k.share_group.find_first_of("/+#$ ") != std::string::npos) {
    return c.Invalid("cluster.share_group",
                     "a group name has no '/', '+', '#', '$' or space");
  }
  o.backup = {.dir = c.Str("backup_dir"),
              .recovery_public_file = c.Str("backup_recovery_public"),
              .interval_s = c.Int("backup_interval_s"),
              .keep = c.Int("backup_keep")};
  if (!o.backup.dir.empty() && o.backup.recovery_public_file.empty()) {
    return c.Invalid("backup_dir",
                     "needs a recovery public key (--backup-recovery-public "
                     "or backup_recovery_public)");
  }
  o.state_url = c.Str("state");
  if (!o.state_url.empty()) {
    auto url = ParseEtcdStateUrl(o.state_url);
    if (!url.ok()) return c.Invalid("state", url.status().message());
    if (!o.backup.dir.empty()) {
      return c.Invalid("backup_dir", "not with a state on etcd (yet)");
    }
  }
  o.etcd_ca_file = c.Str("etcd.ca_file");
  o.etcd_cert_file = c.Str("etcd.cert_file");
  o.etcd_key_file = c.Str("etcd.key_file");
  if (o.etcd_cert_file.empty() != o.etcd_key_file.empty()) {
    return c.Invalid(
        o.etcd_cert_file.empty() ? "etcd.cert_file" : "etcd.key_file",
        "an etcd client certificate needs both cert and key");
  }
  const std::string ca_cert = c.Str("node_ca.cert_file");
  const std::string ca_key = c.Str("node_ca.key_file");
  if (ca_cert.empty() != ca_key.empty()) {
    return c.Invalid(ca_cert.empty() ? "node_ca.cert_file" : "node_ca.key_file",
                     "node_ca needs both cert_file and key_file");
  }
  k.node_cert_seconds = static_cast<int64_t>(c.Int("node_cert_seconds"));
  if (!ca_cert.empty() && c.command == "run") {
    auto ca = CertificateAuthority::Load(ca_cert, ca_key);
    if (!ca.ok()) return c.Invalid("node_ca.cert_file", ca.status().message());
    k.node_ca = *std::move(ca);
  }
  if (o.daemon.state_dir.empty() && c.command != "recovery-key") {
    return InvalidArgumentError("no state directory: --state-dir or state_dir");
  }
  KGR_RETURN_IF_ERROR(NodeCrlOptionsFrom(c, o));
  return o;
}

}  // namespace kgr
