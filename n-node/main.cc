// kgr-node: an N node of a Key Exchange Domain.
#include <pthread.h>
#include <spdlog/spdlog.h>

#include <csignal>
#include <cstdio>
#include <filesystem>
#include <iostream>

#include "kgr/counter_file.h"
#include "kgr/cli.h"
#include "kgr/control.h"
#include "kgr/credentials.h"
#include "kgr/mqtt.h"
#include "kgr/node_client.h"
#include "kgr/store.h"
#include "kgr/tpm.h"

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
                            answers key notifications and data, serves the
                            commands above on its control socket, until
                            SIGTERM
  status                    pairs with key version and age (no key
                            material), registration, NV writes

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
  --journal-prealloc-kb N
                       [journal_prealloc_kb] zeros kept ahead of the ses_keys
                       journal's end (default 256, at most 4096; 0: none),
                       so that a commit's fdatasync writes data, not file
                       metadata
  --pcr-policy         [pcr_policy] bind reads of the NV secrets to the
                       current PCR 0-7 values (measured boot); set at init
  --log-level L        [log_level]
  --json               status: print JSON
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
    kJournalPreallocSetting,
    kPcrPolicySetting,
    kLogLevelSetting,
    kJsonSetting,
    {.flag = "credentials", .key = {}},
    {.flag = "file", .key = {}},
    {.flag = "peer", .key = {}, .kind = SettingKind::kNodeId},
    {.flag = "data", .key = {}, .max = 65536},
};

struct Settings {
  std::string state_dir, tcti, broker, log_level;
  MqttClient mqtt_client = MqttClient::kMosquitto;
  int mqtt_qos = 1;
  uint64_t timeout_ms = 10'000;
  uint64_t journal_prealloc_kb = 256;
  KeyPolicy policy;
  std::map<uint32_t, KeyPolicy> pair_policy;
  bool pcr_policy = false;
};

// policy.pairs: {"<peer N_ID>": {"max_frames": N, "max_bytes": N,
// "max_age_s": N}}, each limit defaulting to the node-wide one.
Status LoadPairPolicy(const nlohmann::json& pairs, Settings* s) {
  for (const auto& [peer, limits] : pairs.items()) {
    const std::string key = "policy.pairs." + peer;
    auto id = ParseNodeId(peer);
    if (!id.ok() || *id == 0) {
      return ConfigKeyError(key, "the key must be an N_ID (8 hex digits)");
    }
    if (!limits.is_object()) return ConfigKeyError(key, "must be an object");
    KeyPolicy kp = s->policy;
    for (const auto& [name, value] : limits.items()) {
      uint64_t* out = name == "max_frames"  ? &kp.max_frames
                      : name == "max_bytes" ? &kp.max_bytes
                      : name == "max_age_s" ? &kp.max_age_ms
                                            : nullptr;
      if (out == nullptr) {
        return ConfigKeyError(key + "." + name,
                              "unknown key (known here: max_frames "
                              "max_bytes max_age_s)");
      }
      KGR_ASSIGN_OR_RETURN(
          *out, ConfigInteger(value, key + "." + name, 0, kMaxNumberSetting));
      if (name == "max_age_s") *out *= 1000;
    }
    s->pair_policy[*id] = kp;
  }
  return OkStatus();
}

StatusOr<Settings> LoadSettings(const CommandLine& c) {
  Settings s;
  s.state_dir = c.Str("state_dir");
  s.tcti = ResolveTcti(c.Str("tcti"));
  s.broker = c.Str("broker");
  s.log_level = c.Str("log_level");
  KGR_ASSIGN_OR_RETURN(s.mqtt_client, ParseMqttClient(c.Str("mqtt_client")));
  s.mqtt_qos = static_cast<int>(c.Int("mqtt_qos"));
  s.pcr_policy = c.Bool("pcr_policy");
  s.timeout_ms = c.Int("timeout_ms");
  s.policy.max_age_ms = 1000 * c.Int("policy.max_age_s");
  s.policy.max_frames = c.Int("policy.max_frames");
  s.policy.max_bytes = c.Int("policy.max_bytes");
  s.journal_prealloc_kb = c.Int("journal_prealloc_kb");
  KGR_RETURN_IF_ERROR(LoadPairPolicy(c.Object("policy.pairs"), &s));
  if (s.state_dir.empty()) {
    return InvalidArgumentError("no state directory: --state-dir or state_dir");
  }
  return s;
}

StoreOptions StoreOptionsFor(const Settings& s) {
  StoreOptions o;
  o.journal_preallocate_bytes = s.journal_prealloc_kb << 10;
  return o;
}

std::string TlsPath(const Settings& s, const char* name) {
  return s.state_dir + "/tls/" + name;
}

StatusOr<std::unique_ptr<Tpm>> OpenTpmFor(const Settings& s) {
  TpmOptions o;
  o.tcti = s.tcti;
  o.state_dir = s.state_dir;
  o.pcr_policy = s.pcr_policy;
  return OpenTpm(o);
}

// Everything a node process needs once initialized.
class NodeService {
 public:
  static StatusOr<std::unique_ptr<NodeService>> Open(const Settings& s) {
    std::unique_ptr<NodeService> x(new NodeService());
    KGR_ASSIGN_OR_RETURN(x->lock_, DirLock::ForStateDir(s.state_dir));
    KGR_ASSIGN_OR_RETURN(x->tpm_, OpenTpmFor(s));
    auto own = LoadOwnData(*x->tpm_);
    if (!own.ok()) return own.status().Annotate("run `kgr-node init` first");
    if (own->identity.role != Role::kNode) {
      return FailedPreconditionError("the TPM holds the KS identity");
    }
    KGR_RETURN_IF_ERROR(MixTpmEntropy(*x->tpm_));
    KGR_ASSIGN_OR_RETURN(
        x->ses_,
        SesKeysStore::Open(*DefaultFileSystem(), s.state_dir + "/ses_keys",
                           own->nk, own->identity.n_id, StoreOptionsFor(s)));
    MqttOptions mo;
    std::string broker =
        s.broker.empty() ? own->identity.broker_address : s.broker;
    KGR_RETURN_IF_ERROR(SplitHostPort(broker, &mo.host, &mo.port));
    mo.ca_file = TlsPath(s, "ca.pem");
    mo.cert_file = TlsPath(s, "cert.pem");
    mo.key_file = TlsPath(s, "key.pem");
    mo.client_id = NodeIdentity(own->identity.n_id);
    mo.client = s.mqtt_client;
    mo.qos = s.mqtt_qos;
    KGR_ASSIGN_OR_RETURN(x->transport_, NewMqttTransport(mo));
    NodeClientOptions no;
    no.request_timeout_ms = s.timeout_ms;
    no.policy = s.policy;
    no.pair_policy = s.pair_policy;
    x->counter_file_ = s.state_dir + "/counter";
    KGR_ASSIGN_OR_RETURN(
        no.counter_floor,
        LoadCounterFloor(*DefaultFileSystem(), x->counter_file_));
    x->client_ =
        std::make_unique<NodeClient>(std::move(*own), *x->tpm_, *x->transport_,
                                     *x->ses_, *SystemClock(), no);
    NodeService* self = x.get();
    x->transport_->SetHandler([self](const std::string& t, Bytes p) {
      if (!self->loop_.Post([self, t, p = std::move(p)] {
            self->client_->HandleMessage(t, p);
          })) {
        spdlog::warn("node: queue full, message dropped");
      }
    });
    KGR_RETURN_IF_ERROR(x->transport_->Connect());
    KGR_RETURN_IF_ERROR(x->client_->Start());
    return x;
  }
  ~NodeService() {
    // The exact receive counters and usage (a clean restart costs nothing).
    if (client_) {
      Status st = client_->Shutdown();
      if (!st.ok())
        spdlog::error("node: counters not saved: {}", st.ToString());
    }
    SaveCounterIfChanged();
    if (transport_) (void)transport_->Disconnect();
  }

  // Persists the last frame counter (at most once per call; the daemon
  // calls it every second and at exit).
  void SaveCounterIfChanged() {
    if (!client_ || client_->last_counter() == saved_counter_) return;
    Status st = SaveCounter(*DefaultFileSystem(), counter_file_,
                            client_->last_counter());
    if (st.ok())
      saved_counter_ = client_->last_counter();
    else
      spdlog::error("node: frame counter not saved: {}", st.ToString());
  }

  EventLoop& loop() { return loop_; }
  NodeClient& client() { return *client_; }
  Tpm& tpm() { return *tpm_; }

  // Runs one command on the loop thread; `respond` is called once.
  void Execute(const nlohmann::json& req,
               std::function<void(nlohmann::json)> respond) {
    std::string cmd = req.value("cmd", "");
    auto fail = [respond](const Status& st) {
      respond({{"ok", false},
               {"code", std::string(StatusCodeName(st.code()))},
               {"error", st.message()}});
    };
    auto done = [respond, fail](Status st) {
      if (st.ok())
        respond({{"ok", true}});
      else
        fail(st);
    };
    uint64_t timeout = req.value("timeout_ms", uint64_t{0});
    auto peer = [&]() -> StatusOr<uint32_t> {
      return ParseNodeId(req.value("peer", ""));
    };
    if (cmd == "register") {
      client_->Register(done, timeout);
    } else if (cmd == "rotate") {
      client_->RotateNksk(done, timeout);
    } else if (cmd == "peers") {
      // The list names the node it is for (signed by the AC).
      auto node = ParseNodeId(req.value("node", ""));
      if (!node.ok() || *node != client_->n_id()) {
        return fail(InvalidArgumentError(
            "the peer list is for node " + req.value("node", "?") +
            ", this is node " + FormatNodeId(client_->n_id())));
      }
      std::vector<uint32_t> ids;
      for (const auto& p : req.value("peers", nlohmann::json::array())) {
        auto id = ParseNodeId(p.is_string() ? p.get<std::string>() : "");
        if (!id.ok()) return fail(id.status());
        ids.push_back(*id);
      }
      done(client_->LoadPeers(ids));
    } else if (cmd == "request-key" || cmd == "renew") {
      auto id = peer();
      if (!id.ok()) return fail(id.status());
      client_->RequestKey(*id, cmd == "renew", done, timeout);
    } else if (cmd == "send") {
      auto id = peer();
      if (!id.ok()) return fail(id.status());
      std::string data = req.value("data", "");
      client_->Send(
          *id, SecretBytes(AsBytes(data)),
          [respond, fail](StatusOr<SecretBytes> r) {
            if (!r.ok()) return fail(r.status());
            std::string reply(reinterpret_cast<const char*>(r->data()),
                              r->size());
            respond({{"ok", true}, {"reply", reply}});
          },
          timeout);
    } else if (cmd == "status") {
      nlohmann::json pairs = nlohmann::json::array();
      uint64_t now = SystemClock()->NowUnixMillis();
      for (const PairInfo& p : client_->Pairs()) {
        pairs.push_back(
            {{"peer", FormatNodeId(p.peer)},
             {"has_key", p.has_key},
             {"key_version", p.key_version},
             {"age_s", p.ctime_unix_ms ? (now - p.ctime_unix_ms) / 1000 : 0},
             {"frames_sent", p.frames_sent},
             {"bytes_sent", p.bytes_sent},
             {"policy_used_percent", static_cast<int>(p.used * 100)}});
      }
      respond({{"ok", true},
               {"n_id", FormatNodeId(client_->n_id())},
               {"registered", client_->registered()},
               {"pairs", pairs},
               {"pending_requests", client_->pending_requests()},
               {"nv_writes", tpm_->counters().nv_writes},
               {"tpm", std::string(tpm_->kind())}});
    } else {
      fail(InvalidArgumentError("unknown command '" + cmd + "'"));
    }
  }

 private:
  NodeService() = default;
  EventLoop loop_;
  std::unique_ptr<DirLock> lock_;
  std::unique_ptr<Tpm> tpm_;
  std::unique_ptr<SesKeysStore> ses_;
  std::unique_ptr<Transport> transport_;
  std::unique_ptr<NodeClient> client_;
  std::string counter_file_;
  uint64_t saved_counter_ = 0;
};

// The broker files, then the TPM (the part that cannot be undone) last.
Status InitFrom(const Settings& s, const Credentials& c, uint64_t* nv_writes) {
  KGR_ASSIGN_OR_RETURN(auto lock, DirLock::ForStateDir(s.state_dir));
  FileSystem& fs = *DefaultFileSystem();
  KGR_RETURN_IF_ERROR(fs.CreateDir(s.state_dir + "/tls", 0700));
  KGR_RETURN_IF_ERROR(
      fs.WriteFileAtomic(TlsPath(s, "ca.pem"), AsBytes(c.ca_pem), 0644));
  KGR_RETURN_IF_ERROR(
      fs.WriteFileAtomic(TlsPath(s, "cert.pem"), AsBytes(c.cert_pem), 0644));
  KGR_RETURN_IF_ERROR(
      fs.WriteFileAtomic(TlsPath(s, "key.pem"), c.key_pem.span(), 0600));
  KGR_ASSIGN_OR_RETURN(auto tpm, OpenTpmFor(s));
  KGR_RETURN_IF_ERROR(InitNode(*tpm, c).status());
  *nv_writes = tpm->counters().nv_writes;
  return OkStatus();
}

// The credential file is verified completely (the AC's signature) before
// anything is written; a state directory this command created is removed
// again if it fails.
Status CmdInit(const Settings& s, const CommandLine& f) {
  if (!f.Has("credentials")) {
    return InvalidArgumentError("init needs --credentials FILE");
  }
  const std::string& path = f.Str("credentials");
  KGR_ASSIGN_OR_RETURN(Credentials c,
                       ReadCredentialFile(*DefaultFileSystem(), path));
  const bool fresh = !DefaultFileSystem()->Exists(s.state_dir);
  uint64_t nv_writes = 0;
  Status st = InitFrom(s, c, &nv_writes);
  if (!st.ok()) {
    std::error_code ec;
    if (fresh) std::filesystem::remove_all(s.state_dir, ec);
    return st;
  }
  std::printf("node %s initialized (nv_writes=%llu); delete %s now\n",
              FormatNodeId(c.n_id).c_str(),
              static_cast<unsigned long long>(nv_writes), path.c_str());
  return OkStatus();
}

StatusOr<nlohmann::json> BuildRequest(const Settings& s, const CommandLine& f) {
  nlohmann::json req{{"cmd", f.command}, {"timeout_ms", s.timeout_ms}};
  if (f.command == "peers") {
    if (!f.Has("file")) return InvalidArgumentError("peers needs --file");
    FileSystem& fs = *DefaultFileSystem();
    auto ca = fs.ReadFile(TlsPath(s, "ca.pem"));
    if (!ca.ok()) {
      return ca.status().Annotate("no CA certificate: run `kgr-node init`");
    }
    KGR_ASSIGN_OR_RETURN(
        PeerList list,
        ReadPeerList(fs, f.Str("file"),
                     std::string_view(reinterpret_cast<const char*>(ca->data()),
                                      ca->size())));
    nlohmann::json ids = nlohmann::json::array();
    for (uint32_t id : list.peers) ids.push_back(FormatNodeId(id));
    req["peers"] = ids;
    req["node"] = FormatNodeId(list.node);
  }
  if (f.command == "request-key" || f.command == "renew" ||
      f.command == "send") {
    if (!f.Has("peer")) {
      return InvalidArgumentError(f.command + " needs --peer ID");
    }
    req["peer"] = FormatNodeId(f.Id("peer"));
  }
  if (f.command == "send") {
    if (!f.Has("data")) return InvalidArgumentError("send needs --data");
    req["data"] = f.Str("data");
  }
  return req;
}

Status FromResponse(const nlohmann::json& r) {
  if (r.value("ok", false)) return OkStatus();
  std::string code = r.value("code", "INTERNAL");
  std::string msg = r.value("error", "failed");
  for (int c = 0; c <= static_cast<int>(StatusCode::kInternal); ++c) {
    if (StatusCodeName(static_cast<StatusCode>(c)) == code) {
      return Status(static_cast<StatusCode>(c), msg);
    }
  }
  return InternalError(msg);
}

void Print(const CommandLine& f, const nlohmann::json& r) {
  if (f.command == "send") {
    std::printf("reply: %s\n", r.value("reply", "").c_str());
  } else if (f.command == "status") {
    if (f.Bool("json")) {
      std::cout << r.dump(2) << "\n";
      return;
    }
    std::cout << "node " << r.value("n_id", "") << "  "
              << (r.value("registered", false) ? "registered"
                                               : "not registered")
              << "  tpm=" << r.value("tpm", "")
              << "  nv_writes=" << r["nv_writes"] << "\n";
    for (const auto& p : r["pairs"]) {
      std::cout << "  peer " << p["peer"].get<std::string>() << "  "
                << (p["has_key"].get<bool>()
                        ? "key v" + std::to_string(p["key_version"].get<int>())
                        : std::string("no key"))
                << "  age " << p["age_s"] << "s  frames " << p["frames_sent"]
                << "  bytes " << p["bytes_sent"] << "  policy used "
                << p["policy_used_percent"] << "%\n";
    }
  } else {
    std::printf("%s: ok\n", f.command.c_str());
  }
}

// Runs a command in the daemon if one listens, else in this process.
Status CmdClient(const Settings& s, const CommandLine& f) {
  KGR_ASSIGN_OR_RETURN(nlohmann::json req, BuildRequest(s, f));
  auto remote = ControlCall(s.state_dir + "/control.sock", req,
                            static_cast<int>(s.timeout_ms) + 5000);
  if (remote.ok()) {
    KGR_RETURN_IF_ERROR(FromResponse(*remote));
    Print(f, *remote);
    return OkStatus();
  }
  if (remote.status().code() != StatusCode::kUnavailable)
    return remote.status();
  KGR_ASSIGN_OR_RETURN(auto svc, NodeService::Open(s));
  bool done = false;
  nlohmann::json resp;
  svc->Execute(req, [&](nlohmann::json r) {
    resp = std::move(r);
    done = true;
  });
  svc->loop().RunUntil([&] { return done; }, [&] { svc->client().Tick(); },
                       static_cast<int>(s.timeout_ms) + 2000);
  if (!done) return DeadlineExceededError("no result in time");
  KGR_RETURN_IF_ERROR(FromResponse(resp));
  Print(f, resp);
  return OkStatus();
}

// SIGTERM and SIGINT blocked in this thread and every thread started from
// now on (the transport's), so that they reach StopLoopOnSignals' sigwait
// and the daemon stops cleanly instead of dying with the default action.
void BlockStopSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

Status CmdRun(const Settings& s) {
  BlockStopSignals();
  KGR_ASSIGN_OR_RETURN(auto svc, NodeService::Open(s));
  StopLoopOnSignals(svc->loop());
  NodeService* self = svc.get();
  svc->client().SetDataHandler([](uint32_t peer, const SecretBytes& data) {
    spdlog::info("node: {} bytes of data from {}", data.size(),
                 FormatNodeId(peer));
    std::string ack = "ack " + std::to_string(data.size()) + " bytes";
    return SecretBytes(AsBytes(ack));
  });
  KGR_ASSIGN_OR_RETURN(
      auto control,
      ControlServer::Start(s.state_dir + "/control.sock", [self](
                                                              nlohmann::json
                                                                  req,
                                                              ControlServer::
                                                                  Respond
                                                                      respond) {
        if (!self->loop().Post(
                [self, req, respond] { self->Execute(req, respond); })) {
          respond({{"ok", false}, {"code", "UNAVAILABLE"}, {"error", "busy"}});
        }
      }));
  // Until registered, for as long as the daemon runs (a KS that is away
  // when the node starts only delays it).
  svc->client().KeepRegistering();
  std::printf("kgr-node ready: n_id=%s\n",
              FormatNodeId(svc->client().n_id()).c_str());
  std::fflush(stdout);
  uint64_t last_save = 0;
  svc->loop().Run([&] {
    svc->client().Tick();
    uint64_t now = SystemClock()->NowMonotonicMillis();
    if (now - last_save >= 1000) {
      svc->SaveCounterIfChanged();
      last_save = now;
    }
  });
  control->Stop();
  spdlog::info("node: stopped");
  return OkStatus();
}

int Main(int argc, char** argv) {
  static const std::set<std::string> kClientCommands = {
      "register", "peers", "request-key", "renew", "send", "status", "rotate"};
  std::set<std::string> commands = kClientCommands;
  commands.insert({"init", "run"});
  int exit_code = kExitUsage;
  auto flags = ParseOrExplain("kgr-node", kUsage, argc, argv, kSpecs, commands,
                              &exit_code);
  if (!flags) return exit_code;
  const CommandLine& f = *flags;
  auto settings = LoadSettings(f);
  if (!settings.ok()) {
    std::fprintf(stderr, "kgr-node: %s\n", settings.status().message().c_str());
    return kExitUsage;
  }
  const Settings& s = *settings;
  SetupLogging(s.log_level);
  Status st;
  if (f.command == "init") {
    st = CmdInit(s, f);
  } else if (f.command == "run") {
    st = CmdRun(s);
  } else {
    st = CmdClient(s, f);
  }
  if (!st.ok()) {
    std::fprintf(stderr, "kgr-node %s: %s\n", f.command.c_str(),
                 st.ToString().c_str());
  }
  return ExitCodeFor(st);
}

}  // namespace
}  // namespace kgr

int main(int argc, char** argv) { return kgr::Main(argc, argv); }
