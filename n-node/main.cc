// kgr-node: an N node of a Key Exchange Domain (the work is in
// libkgr/daemon/: node_daemon.h).
#include "kgr/cli.h"
#include "kgr/metrics_http.h"
#include "kgr/node_daemon.h"

namespace kgr {
namespace {

constexpr char kUsage[] = R"(kgr-node: an N node of a Key Exchange Domain.

usage: kgr-node <command> [flags]

commands:
  init --credentials FILE   create the local trust structure (SRK, ANK), load
                            N_ID, NTAG and BA from the AC's credential file
                            into the TPM, generate NK/NKsign and TOPIC2;
                            install the broker certificate; idempotent. The
                            file's AC signature is verified first: a file
                            cut short or edited is refused, nothing written
  register                  register with the KS (NKSK/NKSKsign into the TPM)
  peers --file FILE         load the AC's signed peer list into ses_keys
  request-key --peer ID     get a session key for the pair (seed 4.7)
  renew --peer ID           renew the pair's session key (seed 4.9)
  send --peer ID --data S   send S to the peer under the pair's key; print
                            its reply
  rotate                    rotate NKSK/NKSKsign with the KS (ephemeral
                            X25519 under the current NKSK; one NV write)
  run                       daemon: registers if needed (asking again,
                            at most a minute apart, until the KS answers),
                            answers key notifications, serves the commands
                            above on its control socket and applications on
                            the API socket (docs/api.md), until SIGTERM
  group-list [--json]       the groups this node is in: mode, key version,
                            members (no key material)
  group-send --group ID --data S
                            publish S to the group under its key (signed
                            with the node's Ed25519 key in a sender_auth
                            group); applications receive through the API
  group-recv [--group ID] [--count N] [--wait-s N]
                            print the group messages the running daemon
                            receives (of one group, or of all), one line
                            each, until N came or N seconds passed (exit 3
                            if fewer than --count came)
  status                    pairs with key version and age (no key
                            material), registration, NV writes
  doctor                    ask the TPM what it implements and has room for;
                            say whether it can run kgr and what is missing
                            (exit 1 if it cannot)
  wipe [--yes]              decommission: erase kgr's NV indices and keys in
                            the TPM and its files in the state directory,
                            after typing "wipe" (or --yes); then init works
                            again on this device

Commands other than init and run go to the running daemon (control socket in
the state directory) when there is one, else run in this process.

flags (each overrides the JSON config file's key in brackets):
  --config FILE        JSON config file
  --state-dir DIR      [state_dir] ses_keys, broker certificate, NV auth
  --tcti TCTI          [tcti] TPM TCTI, or "none" for the software store
                       (no TPM: testing only). Default: $KGR_TCTI, else
                       device:/dev/tpmrm0
  --broker HOST:PORT   [broker] overrides the BA from the credentials
  --mqtt-client C      [mqtt_client] MQTT client library: mosquitto or paho
  --mqtt-qos N         [mqtt_qos] MQTT QoS of kgr frames: 0 or 1 (default 1)
  --timeout-ms N       [timeout_ms] deadline of one request (default 10000)
  --key-max-age-s N    [policy.max_age_s] lifetime policy of pair keys: the
  --key-max-frames N   [policy.max_frames] daemon renews a pair's key by
  --key-max-bytes N    [policy.max_bytes] itself at 80% (+-10% jitter) of any
                       limit and refuses to send beyond it (0: no limit).
                       Per pair, in the config file only:
                       "policy": {"pairs": {"<peer N_ID>": {"max_frames": N,
                                  "max_bytes": N, "max_age_s": N}}}
  --metrics-listen HOST:PORT
                       [metrics_listen] run: serve Prometheus metrics on
                       http://HOST:PORT/metrics (off unless set; use a
                       loopback address, e.g. 127.0.0.1:9464; docs/metrics.md)
  --api-socket PATH    [api.socket] the application API's socket (default
                       <state_dir>/app.sock; docs/api.md)
  --api-group G        [api.group] the socket's group (mode 0660); default:
                       none (mode 0600, the daemon's user only)
  --api-queue N        [api.queue] messages and events queued per
                       application at most (default 1024); beyond, they
                       are dropped and counted. Which local users may use
                       which peers, in the config file only:
                       "api": {"users": {"<user or uid>": ["<N_ID>", ...]
                               or "*"}} (unlisted: the daemon's user, all)
  --journal-prealloc-kb N
                       [journal_prealloc_kb] zeros kept ahead of the ses_keys
                       journal's end (default 256, at most 4096; 0: none),
                       so that a commit's fdatasync writes data, not file
                       metadata
  --pcr-policy         [pcr_policy] bind reads of the NV secrets to the
                       current PCR 0-7 values; set at init; refused
                       while PCRs 0-7 are all zero (nothing measured,
                       e.g. a Raspberry Pi: docs/tpm.md)
  --cert-renew-at-percent N
                       [cert_renew_at_percent] run: renew the broker
                       certificate through the KS once N% of its validity
                       passed (default 67; 0: never)
  --log-level L        [log_level]
  --json               status: print JSON
  --yes                wipe: do not ask (needed without a terminal)
  --help

exit codes: 0 ok, 1 failed, 2 usage or config error, 3 broker, KS, peer,
TPM or daemon unavailable or timeout, 4 refused (pair not allowed, not
registered, NTAG used).
)";

// Every flag and config key (cli.h checks type and range).
constexpr SettingSpec kSpecs[] = {
    kStateDirSetting,
    kTctiSetting,
    {.flag = "broker", .key = "broker", .kind = SettingKind::kHostPort},
    kMqttClientSetting,
    kMqttQosSetting,
    kTimeoutSetting,
    {.flag = "key-max-age-s",
     .key = "policy.max_age_s",
     .kind = SettingKind::kInteger,
     .fallback = "0",
     .max = kMaxNumberSetting},
    {.flag = "key-max-frames",
     .key = "policy.max_frames",
     .kind = SettingKind::kInteger,
     .fallback = "0",
     .max = kMaxNumberSetting},
    {.flag = "key-max-bytes",
     .key = "policy.max_bytes",
     .kind = SettingKind::kInteger,
     .fallback = "0",
     .max = kMaxNumberSetting},
    {.flag = {}, .key = "policy.pairs", .kind = SettingKind::kObject},
    {.flag = "api-socket", .key = "api.socket"},
    {.flag = "api-group", .key = "api.group"},
    {.flag = {}, .key = "api.users", .kind = SettingKind::kObject},
    {.flag = "api-queue",
     .key = "api.queue",
     .kind = SettingKind::kInteger,
     .fallback = "1024",
     .min = 1,
     .max = 1 << 20},
    kJournalPreallocSetting,
    kMetricsListenSetting,
    kPcrPolicySetting,
    {.flag = "cert-renew-at-percent",
     .key = "cert_renew_at_percent",
     .kind = SettingKind::kInteger,
     .fallback = "67",
     .max = 99},
    kLogLevelSetting,
    kJsonSetting,
    {.flag = "yes", .key = {}, .kind = SettingKind::kBool},
    {.flag = "credentials", .key = {}},
    {.flag = "file", .key = {}},
    {.flag = "peer", .key = {}, .kind = SettingKind::kNodeId},
    {.flag = "group", .key = {}, .kind = SettingKind::kNodeId},
    {.flag = "data", .key = {}, .max = 65536},
    {.flag = "count",
     .key = {},
     .kind = SettingKind::kInteger,
     .fallback = "0",
     .max = kMaxNumberSetting},
    {.flag = "wait-s",
     .key = {},
     .kind = SettingKind::kInteger,
     .fallback = "0",
     .max = 86400 * 365},
};

StatusOr<NodeOptions> LoadOptions(const CommandLine& c) {
  NodeOptions o;
  KGR_ASSIGN_OR_RETURN(o.daemon, DaemonOptionsFrom(c));
  NodeClientOptions& n = o.client;
  n.request_timeout_ms = c.Int("timeout_ms");
  o.cert_renew_at_percent = static_cast<int>(c.Int("cert_renew_at_percent"));
  n.policy.max_age_ms = 1000 * c.Int("policy.max_age_s");
  n.policy.max_frames = c.Int("policy.max_frames");
  n.policy.max_bytes = c.Int("policy.max_bytes");
  KGR_ASSIGN_OR_RETURN(n.pair_policy,
                       ParsePairPolicy(c.Object("policy.pairs"), n.policy));
  o.api.socket = c.Str("api.socket");
  o.api.group = c.Str("api.group");
  o.api.users = c.Object("api.users");
  o.api.queue_messages = c.Int("api.queue");
  if (o.daemon.state_dir.empty()) {
    return InvalidArgumentError("no state directory: --state-dir or state_dir");
  }
  return o;
}

Status RunCommand(const CommandLine& f, const NodeOptions& o) {
  if (f.command == "init") {
    if (!f.Has("credentials")) {
      return InvalidArgumentError("init needs --credentials FILE");
    }
    return NodeInit(o, f.Str("credentials"));
  }
  if (f.command == "run") return NodeRun(o);
  if (f.command == "doctor") return TpmDoctor(o.daemon, /*key_server=*/false);
  if (f.command == "wipe") return Wipe(o.daemon, f.Bool("yes"));
  NodeCommand c;
  c.name = f.command;
  c.json = f.Bool("json");
  if (f.Has("file")) c.peers_file = f.Str("file");
  if (f.Has("peer")) c.peer = f.Id("peer");
  if (f.Has("data")) c.data = f.Str("data");
  if (f.Has("group")) c.group = f.Id("group");
  if (f.command == "group-recv") {
    c.count = f.Int("count");
    c.wait_s = f.Int("wait-s");
    return NodeGroupRecv(o, c);
  }
  return RunNodeCommand(o, c);
}

}  // namespace
}  // namespace kgr

int main(int argc, char** argv) {
  return kgr::ProgramMain("kgr-node", kgr::kUsage, argc, argv, kgr::kSpecs,
                          {"init", "run", "register", "peers", "request-key",
                           "renew", "send", "status", "rotate", "doctor",
                           "wipe", "group-list", "group-send", "group-recv"},
                          kgr::LoadOptions, kgr::RunCommand);
}
