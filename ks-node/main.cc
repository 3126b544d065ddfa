// kgr-ks: the Key Server daemon and its operator commands.
#include <spdlog/spdlog.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <iostream>

#include "kgr/counter_file.h"
#include "kgr/cli.h"
#include "kgr/cms.h"
#include "kgr/control.h"
#include "kgr/credentials.h"
#include "kgr/key_server.h"
#include "kgr/mqtt.h"
#include "kgr/store.h"
#include "kgr/tpm.h"

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

flags (each overrides the JSON config file's key in brackets):
  --config FILE        JSON config file
  --state-dir DIR      [state_dir] node_desc, gen_keys, NV auth, socket
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
  --journal-prealloc-kb N
                       [journal_prealloc_kb] zeros kept ahead of each store
                       journal's end (default 256; 0: none), so that a
                       commit's fdatasync writes data, not file metadata
  --pcr-policy         [pcr_policy] bind reads of the NV secrets to the
                       current PCR 0-7 values (measured boot); set at init
  --log-level L        [log_level] debug, info, warn, error
  --json               status: print JSON
  --help

exit codes: 0 ok, 1 failed, 2 usage or config error, 3 broker/TPM/daemon
unavailable or timeout, 4 refused.
)";

struct Settings {
  std::string state_dir, tcti, broker, ca, cert, key, prefix, log_level;
  MqttClient mqtt_client = MqttClient::kMosquitto;
  int mqtt_qos = 1;
  uint64_t gen_key_ttl_ms = 60'000;
  uint64_t node_frames_per_s = 100;
  uint64_t node_burst = 200;
  uint64_t max_pending = 100'000;
  uint64_t journal_prealloc_kb = 256;
  bool pcr_policy = false;
};

// Every flag and config key (cli.h checks type and range).
constexpr SettingSpec kSpecs[] = {
    kStateDirSetting,
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
    kJournalPreallocSetting,
    kPcrPolicySetting,
    kLogLevelSetting,
    kJsonSetting,
    {.flag = "node", .key = {}, .kind = SettingKind::kNodeId},
};

StatusOr<Settings> LoadSettings(const CommandLine& c) {
  Settings s;
  s.state_dir = c.Str("state_dir");
  s.tcti = ResolveTcti(c.Str("tcti"));
  s.broker = c.Str("broker");
  s.ca = c.Str("tls.ca_file");
  s.cert = c.Str("tls.cert_file");
  s.key = c.Str("tls.key_file");
  s.prefix = c.Str("topic_prefix");
  s.log_level = c.Str("log_level");
  KGR_ASSIGN_OR_RETURN(s.mqtt_client, ParseMqttClient(c.Str("mqtt_client")));
  s.mqtt_qos = static_cast<int>(c.Int("mqtt_qos"));
  s.pcr_policy = c.Bool("pcr_policy");
  s.gen_key_ttl_ms = c.Int("gen_key_ttl_ms");
  s.node_frames_per_s = c.Int("node_frames_per_s");
  s.node_burst =
      c.Has("node_burst") ? c.Int("node_burst") : 2 * s.node_frames_per_s;
  if (s.node_frames_per_s != 0 && s.node_burst == 0) {
    return c.Invalid("node_burst", "must be at least 1 with a rate limit");
  }
  s.max_pending = c.Int("max_pending");
  s.journal_prealloc_kb = c.Int("journal_prealloc_kb");
  if (s.state_dir.empty()) {
    return InvalidArgumentError("no state directory: --state-dir or state_dir");
  }
  return s;
}

StatusOr<std::unique_ptr<Tpm>> OpenTpmFor(const Settings& s) {
  TpmOptions o;
  o.tcti = s.tcti;
  o.state_dir = s.state_dir;
  o.pcr_policy = s.pcr_policy;
  return OpenTpm(o);
}

struct Stores {
  std::unique_ptr<NodeDescStore> nodes;
  std::unique_ptr<GenKeysStore> gen_keys;
};

StatusOr<Stores> OpenStores(const Settings& s, const OwnData& own) {
  Stores st;
  StoreOptions o;
  o.journal_preallocate_bytes = s.journal_prealloc_kb << 10;
  StoreOptions nodes_o = o;
  nodes_o.decoded_records = 0;  // the KeyServer caches its node entries
  KGR_ASSIGN_OR_RETURN(
      st.nodes,
      NodeDescStore::Open(*DefaultFileSystem(), s.state_dir + "/node_desc",
                          own.nk, own.identity.n_id, nodes_o));
  KGR_ASSIGN_OR_RETURN(
      st.gen_keys,
      GenKeysStore::Open(*DefaultFileSystem(), s.state_dir + "/gen_keys",
                         own.nk, own.identity.n_id, o));
  return st;
}

const char* StateName(uint8_t s) {
  switch (s) {
    case 1:
      return "authorized";
    case 2:
      return "registered";
    case 3:
      return "revoked";
  }
  return "unknown";
}

nlohmann::json StatusJson(const KeyServer* ks, const NodeDescStore& nodes,
                          const GenKeysStore& gen_keys, uint32_t n_id,
                          const TpmCounters& tpm) {
  nlohmann::json j;
  j["ks_n_id"] = FormatNodeId(n_id);
  nlohmann::json list = nlohmann::json::array();
  nodes.ForEach([&](const NodeDesc& d) {
    nlohmann::json peers = nlohmann::json::array();
    for (uint32_t p : d.allowed_peers) peers.push_back(FormatNodeId(p));
    list.push_back({{"n_id", FormatNodeId(d.n_id)},
                    {"state", StateName(static_cast<uint8_t>(d.state))},
                    {"entry", d.entry_no},
                    {"peers", peers}});
  });
  j["nodes"] = list;
  nlohmann::json pending = nlohmann::json::array();
  gen_keys.ForEach([&](const GenKey& g) {
    if (g.tombstone()) return;  // a served request id, no key
    char id[17];
    std::snprintf(id, sizeof id, "%016llx",
                  static_cast<unsigned long long>(g.request_id));
    pending.push_back({{"request_id", id},
                       {"n_id1", FormatNodeId(g.n_id1)},
                       {"n_id2", FormatNodeId(g.n_id2)},
                       {"step", g.step},
                       {"renewal", g.renewal},
                       {"ctime_unix_ms", g.ctime_unix_ms}});
  });
  j["pending_keys"] = pending;
  j["corrupt_records"] =
      nodes.corrupt_records().size() + gen_keys.corrupt_records().size();
  j["nv_writes"] = tpm.nv_writes;
  j["tpm_commands"] = tpm.tpm_commands;
  if (ks != nullptr) {
    const KeyServerStats& s = ks->stats();
    j["since_start"] = {{"registrations", s.registrations},
                        {"keys_issued", s.keys_issued},
                        {"keys_confirmed", s.keys_confirmed},
                        {"keys_purged", s.keys_purged},
                        {"refused_requests", s.refused_requests},
                        {"dropped_frames", s.dropped_frames},
                        {"authorizations", s.authorizations},
                        {"rate_limited", s.rate_limited}};
  }
  return j;
}

void PrintStatus(const nlohmann::json& j, bool as_json) {
  if (as_json) {
    std::cout << j.dump(2) << "\n";
    return;
  }
  std::cout << "key server " << j["ks_n_id"].get<std::string>() << "\n";
  std::cout << "nodes: " << j["nodes"].size() << "\n";
  for (const auto& n : j["nodes"]) {
    std::cout << "  " << n["n_id"].get<std::string>() << "  "
              << n["state"].get<std::string>() << "  peers:";
    for (const auto& p : n["peers"]) std::cout << " " << p.get<std::string>();
    std::cout << "\n";
  }
  std::cout << "pending keys (gen_keys): " << j["pending_keys"].size() << "\n";
  for (const auto& g : j["pending_keys"]) {
    std::cout << "  " << g["n_id1"].get<std::string>() << " -> "
              << g["n_id2"].get<std::string>() << "  step "
              << g["step"].get<int>() << "\n";
  }
  std::cout << "corrupt records: " << j["corrupt_records"] << "\n";
  std::cout << "NV writes (this process): " << j["nv_writes"] << "\n";
  if (j.contains("since_start")) {
    std::cout << "since start: " << j["since_start"].dump() << "\n";
  }
}

Status CmdRotate(const Settings& s, const CommandLine& c) {
  if (!c.Has("node")) return InvalidArgumentError("rotate needs --node ID");
  const std::string node = FormatNodeId(c.Id("node"));
  KGR_ASSIGN_OR_RETURN(nlohmann::json r,
                       ControlCall(s.state_dir + "/control.sock",
                                   {{"cmd", "rotate"}, {"node", node}}, 5000));
  if (!r.value("ok", false)) return InternalError(r.value("error", "failed"));
  std::printf("asked node %s to rotate its NKSK\n", node.c_str());
  return OkStatus();
}

Status CmdInit(const Settings& s) {
  KGR_ASSIGN_OR_RETURN(auto lock, DirLock::ForStateDir(s.state_dir));
  KGR_ASSIGN_OR_RETURN(auto tpm, OpenTpmFor(s));
  KGR_ASSIGN_OR_RETURN(OwnData own, InitKeyServer(*tpm, s.broker, s.prefix));
  std::printf("ks initialized: n_id=%s nv_writes=%llu\n",
              FormatNodeId(own.identity.n_id).c_str(),
              static_cast<unsigned long long>(tpm->counters().nv_writes));
  return OkStatus();
}

Status CmdStatus(const Settings& s, bool as_json) {
  auto remote =
      ControlCall(s.state_dir + "/control.sock", {{"cmd", "status"}}, 5000);
  if (remote.ok()) {
    PrintStatus(*remote, as_json);
    return OkStatus();
  }
  KGR_ASSIGN_OR_RETURN(auto lock, DirLock::ForStateDir(s.state_dir));
  KGR_ASSIGN_OR_RETURN(auto tpm, OpenTpmFor(s));
  KGR_ASSIGN_OR_RETURN(OwnData own, LoadOwnData(*tpm));
  KGR_ASSIGN_OR_RETURN(Stores st, OpenStores(s, own));
  PrintStatus(StatusJson(nullptr, *st.nodes, *st.gen_keys, own.identity.n_id,
                         tpm->counters()),
              as_json);
  return OkStatus();
}

Status CmdRun(const Settings& s) {
  // Start-up phases, logged once serving (docs/performance.md item 5).
  using StartClock = std::chrono::steady_clock;
  StartClock::time_point phase_start = StartClock::now();
  auto phase_ms = [&phase_start] {
    StartClock::time_point now = StartClock::now();
    double ms =
        std::chrono::duration<double, std::milli>(now - phase_start).count();
    phase_start = now;
    return ms;
  };
  EventLoop loop;
  StopLoopOnSignals(loop);
  KGR_ASSIGN_OR_RETURN(auto lock, DirLock::ForStateDir(s.state_dir));
  KGR_ASSIGN_OR_RETURN(auto tpm, OpenTpmFor(s));
  auto loaded = LoadOwnData(*tpm);
  if (!loaded.ok()) return loaded.status().Annotate("run `kgr-ks init` first");
  OwnData own = std::move(*loaded);
  if (own.identity.role != Role::kKeyServer) {
    return FailedPreconditionError("the TPM holds an N node identity");
  }
  KGR_ASSIGN_OR_RETURN(Bytes kedk, tpm->KedkPublic());
  KGR_RETURN_IF_ERROR(MixTpmEntropy(*tpm));
  const double tpm_ms = phase_ms();
  KGR_ASSIGN_OR_RETURN(Stores st, OpenStores(s, own));
  const double stores_ms = phase_ms();
  for (const auto& bad : st.nodes->corrupt_records()) {
    spdlog::error("ks: node_desc record {} is corrupt and ignored: {}",
                  bad.index, bad.status.message());
  }
  KGR_ASSIGN_OR_RETURN(auto cms, CmsEndpoint::Load(s.ca, s.cert, s.key));
  MqttOptions mo;
  KGR_RETURN_IF_ERROR(SplitHostPort(s.broker, &mo.host, &mo.port));
  mo.ca_file = s.ca;
  mo.cert_file = s.cert;
  mo.key_file = s.key;
  mo.client_id = "ks";
  mo.client = s.mqtt_client;
  mo.qos = s.mqtt_qos;
  KGR_ASSIGN_OR_RETURN(auto transport, NewMqttTransport(mo));
  KeyServerOptions ko;
  ko.gen_key_ttl_ms = s.gen_key_ttl_ms;
  ko.node_frames_per_s = static_cast<double>(s.node_frames_per_s);
  ko.node_burst = static_cast<double>(s.node_burst);
  ko.max_pending = s.max_pending;
  const std::string counter_file = s.state_dir + "/counter";
  KGR_ASSIGN_OR_RETURN(ko.counter_floor,
                       LoadCounterFloor(*DefaultFileSystem(), counter_file));
  KeyServer ks(std::move(own), std::move(kedk), *transport, *st.nodes,
               *st.gen_keys, cms.get(), *SystemClock(), ko);
  // Bounded: a flood fills at most 16384 messages or 16 MiB, then is
  // dropped. Messages that arrive together are handled as one batch (one
  // fdatasync for all their new keys).
  KeyServerInbox inbox(ks, loop);
  transport->SetHandler([&](const std::string& topic, Bytes payload) {
    inbox.Push(topic, std::move(payload));
  });
  const double setup_ms = phase_ms();
  KGR_RETURN_IF_ERROR(transport->Connect());
  KGR_RETURN_IF_ERROR(ks.Start());
  const double connect_ms = phase_ms();
  Tpm* tpm_ptr = tpm.get();
  KGR_ASSIGN_OR_RETURN(
      auto control,
      ControlServer::Start(
          s.state_dir + "/control.sock",
          [&](nlohmann::json req, ControlServer::Respond respond) {
            bool posted = loop.Post([&, req, respond] {
              if (req.value("cmd", "") == "status") {
                respond(StatusJson(&ks, *st.nodes, *st.gen_keys, ks.n_id(),
                                   tpm_ptr->counters()));
              } else if (req.value("cmd", "") == "rotate") {
                auto id = ParseNodeId(req.value("node", ""));
                Status r = id.ok() ? ks.RequestRotation(*id) : id.status();
                respond({{"ok", r.ok()}, {"error", r.ToString()}});
              } else {
                respond({{"ok", false}, {"error", "unknown command"}});
              }
            });
            if (!posted) respond({{"ok", false}, {"error", "busy"}});
          }));
  std::printf("kgr-ks ready: n_id=%s nodes=%zu\n",
              FormatNodeId(ks.n_id()).c_str(), st.nodes->size());
  std::fflush(stdout);
  spdlog::info(
      "ks: start-up: TPM {:.1f} ms, stores {:.1f} ms, certificates and "
      "MQTT client {:.1f} ms, connect and subscribe {:.1f} ms, control "
      "socket {:.1f} ms",
      tpm_ms, stores_ms, setup_ms, connect_ms, phase_ms());
  uint64_t last_purge = 0;
  uint64_t saved_counter = 0;
  loop.Run([&] {
    uint64_t now = SystemClock()->NowMonotonicMillis();
    if (now - last_purge >= 1000) {
      ks.Tick();
      last_purge = now;
      if (ks.last_counter() != saved_counter) {
        Status c =
            SaveCounter(*DefaultFileSystem(), counter_file, ks.last_counter());
        if (c.ok())
          saved_counter = ks.last_counter();
        else
          spdlog::error("ks: frame counter not saved: {}", c.ToString());
      }
      if (uint64_t d = inbox.TakeDropped()) {
        spdlog::warn("ks: queue full: {} messages dropped in the last second",
                     d);
      }
    }
  });
  control->Stop();
  Status f = ks.FlushCounters();
  if (f.ok())
    f = SaveCounter(*DefaultFileSystem(), counter_file, ks.last_counter());
  if (!f.ok())
    spdlog::error("ks: replay counters not persisted: {}", f.ToString());
  Status d = transport->Disconnect();
  if (!d.ok()) spdlog::warn("ks: disconnect: {}", d.ToString());
  spdlog::info("ks: stopped");
  return OkStatus();
}

int Main(int argc, char** argv) {
  int exit_code = kExitUsage;
  auto flags = ParseOrExplain("kgr-ks", kUsage, argc, argv, kSpecs,
                              {"init", "run", "status", "rotate"}, &exit_code);
  if (!flags) return exit_code;
  auto settings = LoadSettings(*flags);
  if (!settings.ok()) {
    std::fprintf(stderr, "kgr-ks: %s\n", settings.status().message().c_str());
    return kExitUsage;
  }
  SetupLogging(settings->log_level);
  Status st;
  if (flags->command == "init") {
    st = CmdInit(*settings);
  } else if (flags->command == "run") {
    st = CmdRun(*settings);
  } else if (flags->command == "rotate") {
    st = CmdRotate(*settings, *flags);
  } else {
    st = CmdStatus(*settings, flags->Bool("json"));
  }
  if (!st.ok()) {
    std::fprintf(stderr, "kgr-ks %s: %s\n", flags->command.c_str(),
                 st.ToString().c_str());
  }
  return ExitCodeFor(st);
}

}  // namespace
}  // namespace kgr

int main(int argc, char** argv) { return kgr::Main(argc, argv); }
