// kgr-ks: the Key Server daemon and its operator commands (the work is in
// libkgr/daemon/: ks_daemon.h).
#include <string>
#include <vector>

#include "kgr/cli.h"
#include "kgr/ks_daemon.h"
#include "kgr/metrics_http.h"
#include "kgr/topic.h"

namespace kgr {
namespace {

constexpr char kUsage[] = R"(kgr-ks: the Key Server of a Key Exchange Domain.

usage: kgr-ks <command> [flags]

commands:
  init     create the local trust structure (SRK, ANK, KEDK) and the KS's own
           data (N_ID, NK/NKsign, BA, TOPIC1) in the TPM; idempotent
  run      serve: registration, session keys, renewals, AC requests, until
           SIGTERM/SIGINT
  status   registered nodes, pending keys, NV writes (asks the running
           daemon, or reads the files if none runs)
  rotate --node ID
           ask a node to rotate its NKSK/NKSKsign now (running daemon)
  recovery-key --out-private FILE --out-public FILE
           make an X25519 recovery key for backups (offline)
  backup --out FILE
           a backup encrypted to --backup-recovery-public (docs/operations.md)
  restore --backup FILE --recovery-key FILE
           restore a backup onto this TPM and a new --state-dir
  cluster init | join | approve --fingerprint FP | remove --lane N | leave |
          finish-rotation | status
           the membership ceremony of a cluster on etcd (--state etcd://,
           --instance: this member's lane; docs/cluster.md): init on the
           first member, join on a new one (waits --wait-s for a member's
           approve), remove/leave rotate the domain key online
  doctor   ask the TPM what it implements and has room for; say whether it
           can run kgr and what is missing (exit 1 if it cannot)
  wipe [--yes]
           decommission: erase kgr's NV indices and keys in the TPM and its
           files in the state directory (every registration with them),
           after typing "wipe" (or --yes)

flags (each overrides the JSON config file's key in brackets):
  --config FILE        JSON config file
  --state-dir DIR      [state_dir] node_desc, gen_keys, NV auth, socket
  --state etcd://HOST:PORT[,HOST:PORT...]/PREFIX
                       [state] node_desc and gen_keys on etcd, sealed under
                       the domain key (<state_dir>/domain_key, created
                       with a new state); default: the files of state_dir
                       (docs/cluster.md)
  --etcd-ca FILE       [etcd.ca_file] CA of etcd's client URLs (https)
  --etcd-cert FILE     [etcd.cert_file] client certificate for etcd
  --etcd-key FILE      [etcd.key_file] its key
  --tcti TCTI          [tcti] TPM TCTI, e.g. swtpm:host=127.0.0.1,port=2321,
                       or "none" for the software store (no TPM: testing
                       only). Default: $KGR_TCTI, else device:/dev/tpmrm0
  --broker HOST:PORT   [broker] MQTT broker address (BA)
  --mqtt-client C      [mqtt_client] MQTT client library: mosquitto or paho
  --mqtt-qos N         [mqtt_qos] MQTT QoS of kgr frames: 0 or 1 (default 1)
  --ca FILE            [tls.ca_file] KED CA certificate (PEM)
  --cert FILE          [tls.cert_file] KS certificate (PEM, CN=ks, OU=kgr-ks)
  --key FILE           [tls.key_file] KS private key (PEM)
  --topic-prefix P     [topic_prefix] default "kgr"
  --gen-key-ttl-ms N   [gen_key_ttl_ms] purge unconfirmed keys after N ms
  --node-frames-per-s N
                       [node_frames_per_s] frames one node may make the KS
                       work on per second (token bucket; default 100; 0: no
                       limit); beyond that they are dropped before any crypto
  --node-burst N       [node_burst] the bucket's size (default 2 x the rate)
  --max-pending N      [max_pending] unconfirmed session keys at once; more
                       requests get "busy" (default 100000)
  --group-batch-ms N   [group_batch_ms] joins and leaves of a group arriving
                       within N ms of the first make one rekey (default 200;
                       0: each its own). Removals and revocations rekey at
                       once, with the joins waiting in the window
  --instance N         [cluster.instance] this instance's frame-counter lane
                       in a cluster, 0-255, unique per instance (default 0:
                       a single KS; docs/cluster.md)
  --share-group G      [cluster.share_group] clustered: subscribe to the KS
                       topics as MQTT shared subscriptions $share/G/...;
                       the same on every instance, and unguessable
  --metrics-listen HOST:PORT
                       [metrics_listen] run: serve Prometheus metrics on
                       http://HOST:PORT/metrics (off unless set; use a
                       loopback address, e.g. 127.0.0.1:9464; docs/metrics.md)
  --journal-prealloc-kb N
                       [journal_prealloc_kb] zeros kept ahead of each store
                       journal's end (default 256; 0: none), so that a
                       commit's fdatasync writes data, not file metadata
  --pcr-policy         [pcr_policy] bind reads of the NV secrets to the
                       current PCR 0-7 values; set at init; refused
                       while PCRs 0-7 are all zero (nothing measured,
                       e.g. a Raspberry Pi: docs/tpm.md)
  --backup-dir DIR     [backup_dir] write a backup there after every change
                       of node_desc a restore must not lose
  --backup-recovery-public FILE
                       [backup_recovery_public] X25519 public key (PEM)
  --backup-interval-s N
                       [backup_interval_s] at most one backup per N s (10)
  --backup-keep N      [backup_keep] newest backups kept in the dir (20)
  --node-ca FILE       [node_ca.cert_file] issuing CA (an intermediate the AC
                       delegated, provisioning/make-intermediate.sh) that
                       signs node certificate renewals (cert_renew_req)
  --node-ca-key FILE   [node_ca.key_file] its private key
  --node-cert-seconds N
                       [node_cert_seconds] renewed certificate lifetime
                       (default 604800, 7 days)
  --node-crl FILE      [node_ca.crl_file] run: write the node CA's CRL there
                       (the certificates it signed for revoked nodes) at
                       start, on each revocation and daily
  --node-crl-hook CMD  [node_ca.crl_hook] run after each write, with
                       KGR_CRL_FILE set (broker-config/reload-crl.sh)
  --log-level L        [log_level] debug, info, warn, error
  --json               status: print JSON
  --yes                wipe: do not ask (needed without a terminal)
  --help

exit codes: 0 ok, 1 failed, 2 usage or config error, 3 broker/TPM/daemon
unavailable or timeout, 4 refused.
)";

// Every flag and config key (cli.h checks type and range).
constexpr SettingSpec kSpecs[] = {
    kStateDirSetting,
    {.flag = "state", .key = "state"},
    {.flag = "etcd-ca", .key = "etcd.ca_file"},
    {.flag = "etcd-cert", .key = "etcd.cert_file"},
    {.flag = "etcd-key", .key = "etcd.key_file"},
    kTctiSetting,
    kBrokerSetting,
    kMqttClientSetting,
    kMqttQosSetting,
    kTlsCaSetting,
    kTlsCertSetting,
    kTlsKeySetting,
    {.flag = "topic-prefix",
     .key = "topic_prefix",
     .fallback = kDefaultTopicPrefix,
     .check = ValidateTopicPrefix},
    {.flag = "gen-key-ttl-ms",
     .key = "gen_key_ttl_ms",
     .kind = SettingKind::kInteger,
     .fallback = "60000",
     .min = 1,
     .max = 86'400'000},
    {.flag = "node-frames-per-s",
     .key = "node_frames_per_s",
     .kind = SettingKind::kInteger,
     .fallback = "100",
     .max = 1'000'000},
    {.flag = "node-burst",
     .key = "node_burst",
     .kind = SettingKind::kInteger,
     .max = 2'000'000},
    {.flag = "max-pending",
     .key = "max_pending",
     .kind = SettingKind::kInteger,
     .fallback = "100000",
     .min = 1,
     .max = 100'000'000},
    {.flag = "group-batch-ms",
     .key = "group_batch_ms",
     .kind = SettingKind::kInteger,
     .fallback = "200",
     .max = 60'000},
    {.flag = "instance",
     .key = "cluster.instance",
     .kind = SettingKind::kInteger,
     .fallback = "0",
     .max = 255},
    {.flag = "share-group", .key = "cluster.share_group"},
    kJournalPreallocSetting,
    kMetricsListenSetting,
    {.flag = "backup-dir", .key = "backup_dir"},
    {.flag = "backup-recovery-public", .key = "backup_recovery_public"},
    {.flag = "backup-interval-s",
     .key = "backup_interval_s",
     .kind = SettingKind::kInteger,
     .fallback = "10",
     .min = 1,
     .max = 86'400},
    {.flag = "node-ca", .key = "node_ca.cert_file"},
    {.flag = "node-ca-key", .key = "node_ca.key_file"},
    {.flag = "node-crl", .key = "node_ca.crl_file"},
    {.flag = "node-crl-hook", .key = "node_ca.crl_hook"},
    {.flag = "node-cert-seconds",
     .key = "node_cert_seconds",
     .kind = SettingKind::kInteger,
     .fallback = "604800",
     .min = 60,
     .max = 3153600000},
    {.flag = "backup-keep",
     .key = "backup_keep",
     .kind = SettingKind::kInteger,
     .fallback = "20",
     .min = 1,
     .max = 100'000},
    {.flag = "out", .key = {}},
    {.flag = "out-private", .key = {}},
    {.flag = "out-public", .key = {}},
    {.flag = "backup", .key = {}},
    {.flag = "recovery-key", .key = {}},
    kPcrPolicySetting,
    kLogLevelSetting,
    kJsonSetting,
    {.flag = "yes", .key = {}, .kind = SettingKind::kBool},
    {.flag = "node", .key = {}, .kind = SettingKind::kNodeId},
    {.flag = "fingerprint", .key = {}},
    {.flag = "lane", .key = {}, .kind = SettingKind::kInteger, .max = 255},
    {.flag = "wait-s",
     .key = {},
     .kind = SettingKind::kInteger,
     .fallback = "300",
     .min = 1,
     .max = 86'400},
    {.flag = "settle-ms",
     .key = {},
     .kind = SettingKind::kInteger,
     .fallback = "2000",
     .min = 0,
     .max = 600'000},
};

// `cluster <sub>` arrives as the command "cluster-<sub>" (main()).
Status RunCluster(const CommandLine& f, const KsOptions& o) {
  ClusterCommand c;
  c.sub = f.command.substr(8);
  c.fingerprint = f.Str("fingerprint");
  c.lane = f.Given("lane") ? static_cast<int>(f.Int("lane")) : -1;
  c.wait_s = static_cast<int>(f.Int("wait-s"));
  c.settle_ms = static_cast<int>(f.Int("settle-ms"));
  c.as_json = f.Bool("json");
  return KsCluster(o, c);
}

Status RunCommand(const CommandLine& f, const KsOptions& o) {
  if (f.command == "init") return KsInit(o);
  if (f.command.rfind("cluster-", 0) == 0) return RunCluster(f, o);
  if (f.command == "run") return KsRun(o);
  if (f.command == "doctor") return TpmDoctor(o.daemon, /*key_server=*/true);
  if (f.command == "wipe") return Wipe(o.daemon, f.Bool("yes"));
  if (f.command == "status") return KsStatus(o, f.Bool("json"));
  if (f.command == "backup") return KsBackupNow(o, f.Str("out"));
  if (f.command == "recovery-key") {  // offline: no state, no TPM
    return KsRecoveryKey(f.Str("out-private"), f.Str("out-public"));
  }
  if (f.command == "restore") {
    return KsRestore(o, f.Str("backup"), f.Str("recovery-key"));
  }
  if (!f.Has("node")) return InvalidArgumentError("rotate needs --node ID");
  return KsRotate(o, f.Id("node"));
}

}  // namespace
}  // namespace kgr

int main(int argc, char** argv) {
  // "cluster init" is one command, "cluster-init".
  std::vector<std::string> args(argv, argv + argc);
  for (size_t i = 1; i + 1 < args.size(); ++i) {
    if (args[i] == "cluster" && args[i + 1].rfind("--", 0) != 0) {
      args[i] += "-" + args[i + 1];
      args.erase(args.begin() + static_cast<std::ptrdiff_t>(i) + 1);
      break;
    }
  }
  std::vector<char*> ptrs;
  for (std::string& a : args) ptrs.push_back(a.data());
  return kgr::ProgramMain(
      "kgr-ks", kgr::kUsage, static_cast<int>(ptrs.size()), ptrs.data(),
      kgr::kSpecs,
      {"init", "run", "status", "rotate", "backup", "restore", "recovery-key",
       "doctor", "wipe", "cluster-init", "cluster-join", "cluster-approve",
       "cluster-remove", "cluster-leave", "cluster-finish-rotation",
       "cluster-status"},
      kgr::KsOptionsFrom, kgr::RunCommand);
}
