// kgr-ac: the Authorization Centre's operator commands (the work is in
// libkgr/daemon/: ac_tool.h).
#include <string>
#include <string_view>
#include <vector>

#include "kgr/ac_tool.h"
#include "kgr/cli.h"
#include "kgr/topic.h"

namespace kgr {
namespace {

constexpr char kUsage[] =
    R"(kgr-ac: the Authorization Centre of a Key Exchange Domain.

usage: kgr-ac <command> [flags]

commands:
  authorize --out FILE [--peers ID,ID...]
           ask the KS to authorize a new node (it draws N_ID and NTAG) that
           may pair with the given nodes; write the node's credential file
           (mode 0600: N_ID, NTAG, BA, CA and a broker client certificate
           issued with the CA key; signed with --key). Checks that --out can
           be written before asking the KS; if anything fails after the KS
           authorized the node, revokes it again
  peers --node ID --peers ID,ID... [--withdraw] [--out FILE]
           allow (or withdraw) pairs at the KS; with --out also write the
           node's signed peer list file for `kgr-node peers`
  list     the nodes the KS knows, their state and allowed peers
  group create --name G [--members ID,ID...] [--mode group-key|sender-auth]
           [--rekey-every-s N]
           a new group at the KS (random id, rekey and data topics); its
           members get their keys at once. --mode sender-auth: each member
           also signs its messages with its own Ed25519 key (group-key: any
           member could forge another's). --rekey-every-s: a new group key
           at least this often (0: only on joins and leaves)
  group add --name G --members ID,ID...
           new members; joins within the KS's batch window make one rekey
  group remove --name G --members ID,ID...
           removes members at once (one rekey: they cannot read what the
           group sends from now on)
  group list
           the groups, their mode, key version and members
  group delete --name G
           every member is told to forget the group
  crl      write (or refresh) the CA's revocation list --crl for the broker
  revoke --node ID
           revoke a node for good: the KS refuses it from now on and tells
           each of its peers to wipe their pair; it can come back only as a
           new node (new authorization). With --crl, the node's broker
           certificate (from --issued-dir) is added to the CRL too; with
           --crl-hook the hook makes the broker re-read it and the node's
           open broker connection is cut (else: SIGHUP the broker by hand)

flags (each overrides the JSON config file's key in brackets):
  --config FILE        JSON config file
  --broker HOST:PORT   [broker] MQTT broker (also written into credentials)
  --mqtt-client C      [mqtt_client] MQTT client library: mosquitto or paho
  --mqtt-qos N         [mqtt_qos] MQTT QoS of kgr frames: 0 or 1 (default 1)
  --ca FILE            [tls.ca_file] KED CA certificate (PEM)
  --cert FILE          [tls.cert_file] AC certificate (PEM, CN=ac, OU=kgr-ac)
  --key FILE           [tls.key_file] AC private key (PEM)
  --ks-cert FILE       [ks_cert_file] the KS certificate (requests are
                       encrypted to it)
  --ca-key FILE        [ca_key_file] issuing CA's private key, to issue node
                       certificates (authorize) and sign the CRL
  --issuing-ca FILE    [issuing_ca_file] issuing CA certificate chain (an
                       intermediate, provisioning/make-intermediate.sh);
                       default: the root in --ca (its key then online)
  --cert-days N        [cert_days] node certificate lifetime (default 365)
  --cert-seconds N     [cert_seconds] the same in seconds (overrides)
  --issued-dir DIR     [issued_dir] keep a copy of every node certificate
                       issued (authorize), to revoke it later
  --crl FILE           [crl_file] the issuing CA's certificate revocation list
  --crl-hook CMD       [crl_hook] run (sh -c, KGR_CRL_FILE set) after the CRL
                       changed, e.g. broker-config/reload-crl.sh
  --topic-prefix P     [topic_prefix] default "kgr"
  --timeout-ms N       [timeout_ms] wait for the KS (default 10000)
  --log-level L        [log_level]
  --json               list, group list: print JSON
  --name G             group: the group's name ([A-Za-z0-9_.-], <= 64)
  --members ID,ID...   group: nodes (N_IDs)
  --mode M             group create: group-key (default) or sender-auth
  --rekey-every-s N    group create: lifetime of a group key (0: none)
  --help

exit codes: 0 ok, 1 failed, 2 usage or config error, 3 broker or KS
unavailable or timeout, 4 refused by the KS.
)";

// Every flag and config key (cli.h checks type and range).
constexpr SettingSpec kSpecs[] = {
    kBrokerSetting,
    kMqttClientSetting,
    kMqttQosSetting,
    kTlsCaSetting,
    kTlsCertSetting,
    kTlsKeySetting,
    {.flag = "ks-cert", .key = "ks_cert_file"},
    {.flag = "ca-key", .key = "ca_key_file"},
    {.flag = "cert-days",
     .key = "cert_days",
     .kind = SettingKind::kInteger,
     .fallback = "365",
     .min = 1,
     .max = 36500},
    {.flag = "cert-seconds",
     .key = "cert_seconds",
     .kind = SettingKind::kInteger,
     .fallback = "0",
     .min = 0,
     .max = 3153600000},
    {.flag = "issuing-ca", .key = "issuing_ca_file"},
    {.flag = "issued-dir", .key = "issued_dir"},
    {.flag = "crl", .key = "crl_file"},
    {.flag = "crl-hook", .key = "crl_hook"},
    {.flag = "topic-prefix",
     .key = "topic_prefix",
     .fallback = kDefaultTopicPrefix,
     .check = ValidateTopicPrefix},
    kTimeoutSetting,
    kLogLevelSetting,
    kJsonSetting,
    {.flag = "withdraw", .key = {}, .kind = SettingKind::kBool},
    {.flag = "out", .key = {}},
    {.flag = "peers", .key = {}, .kind = SettingKind::kNodeIdList},
    {.flag = "node", .key = {}, .kind = SettingKind::kNodeId},
    {.flag = "name", .key = {}},
    {.flag = "members", .key = {}, .kind = SettingKind::kNodeIdList},
    {.flag = "mode", .key = {}},
    {.flag = "rekey-every-s",
     .key = {},
     .kind = SettingKind::kInteger,
     .fallback = "0",
     .min = 0,
     .max = 4'000'000'000},
};

StatusOr<AcOptions> LoadOptions(const CommandLine& c) {
  AcOptions o;
  KGR_ASSIGN_OR_RETURN(o.broker, BrokerOptionsFrom(c));
  o.ks_cert_file = c.Str("ks_cert_file");
  o.ca_key_file = c.Str("ca_key_file");
  o.issued_dir = c.Str("issued_dir");
  o.crl_file = c.Str("crl_file");
  o.crl_hook = c.Str("crl_hook");
  o.issuing_ca_file = c.Str("issuing_ca_file");
  o.cert_seconds = static_cast<int64_t>(c.Int("cert_seconds"));
  o.topic_prefix = c.Str("topic_prefix");
  o.cert_days = static_cast<int>(c.Int("cert_days"));
  o.timeout_ms = static_cast<int>(c.Int("timeout_ms"));
  return o;
}

Status RunCommand(const CommandLine& f, const AcOptions& o) {
  AcArgs a;
  a.withdraw = f.Bool("withdraw");
  a.json = f.Bool("json");
  if (f.Has("out")) a.out = f.Str("out");
  if (f.Has("peers")) a.peers = f.Ids("peers");
  if (f.Has("node")) a.node = f.Id("node");
  if (f.Has("name")) a.group = f.Str("name");
  if (f.Has("members")) a.members = f.Ids("members");
  if (f.Has("mode")) a.group_mode = f.Str("mode");
  a.rekey_every_s = static_cast<uint32_t>(f.Int("rekey-every-s"));
  if (f.command.rfind("group-", 0) == 0)
    return AcGroup(o, a, std::string_view(f.command).substr(6));
  if (f.command == "authorize") return AcAuthorize(o, a);
  if (f.command == "peers") return AcPeers(o, a);
  if (f.command == "crl") return AcCrl(o);
  if (f.command == "revoke") return AcRevoke(o, a);
  return AcList(o, a.json);
}

}  // namespace
}  // namespace kgr

int main(int argc, char** argv) {
  // `group create` and the like are one command: "group-create".
  std::vector<std::string> joined;
  std::vector<char*> args(argv, argv + argc);
  if (argc >= 3 && std::string_view(argv[1]) == "group" && argv[2][0] != '-') {
    joined.push_back(std::string("group-") + argv[2]);
    args.erase(args.begin() + 1, args.begin() + 3);
    args.insert(args.begin() + 1, joined.back().data());
  }
  return kgr::ProgramMain(
      "kgr-ac", kgr::kUsage, static_cast<int>(args.size()), args.data(),
      kgr::kSpecs,
      {"authorize", "peers", "list", "crl", "revoke", "group-create",
       "group-add", "group-remove", "group-list", "group-delete"},
      kgr::LoadOptions, kgr::RunCommand);
}
