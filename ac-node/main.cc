// kgr-ac: the Authorization Centre's operator commands.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>

#include "kgr/ac_client.h"
#include "kgr/cli.h"
#include "kgr/cms.h"
#include "kgr/credentials.h"
#include "kgr/mqtt.h"

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
  crl      write (or refresh) the CA's revocation list --crl for the broker
  revoke --node ID
           revoke a node for good: the KS refuses it from now on and tells
           each of its peers to wipe their pair; it can come back only as a
           new node (new authorization). With --crl, the node's broker
           certificate (from --issued-dir) is added to the CRL too: after a
           SIGHUP the broker refuses the identity

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
  --ca-key FILE        [ca_key_file] CA private key, to issue node
                       certificates (authorize)
  --cert-days N        [cert_days] node certificate lifetime (default 365)
  --issued-dir DIR     [issued_dir] keep a copy of every node certificate
                       issued (authorize), to revoke it later
  --crl FILE           [crl_file] the broker's certificate revocation list
  --topic-prefix P     [topic_prefix] default "kgr"
  --timeout-ms N       [timeout_ms] wait for the KS (default 10000)
  --log-level L        [log_level]
  --json               list: print JSON
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
    {.flag = "issued-dir", .key = "issued_dir"},
    {.flag = "crl", .key = "crl_file"},
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
};

struct Settings {
  std::string broker, ca, cert, key, ks_cert, ca_key, prefix, log_level;
  MqttClient mqtt_client = MqttClient::kMosquitto;
  int mqtt_qos = 1;
  std::string issued_dir, crl;
  int cert_days = 365;
  int timeout_ms = 10000;
};

StatusOr<Settings> LoadSettings(const CommandLine& c) {
  Settings s;
  s.broker = c.Str("broker");
  s.ca = c.Str("tls.ca_file");
  KGR_ASSIGN_OR_RETURN(s.mqtt_client, ParseMqttClient(c.Str("mqtt_client")));
  s.mqtt_qos = static_cast<int>(c.Int("mqtt_qos"));
  s.cert = c.Str("tls.cert_file");
  s.key = c.Str("tls.key_file");
  s.ks_cert = c.Str("ks_cert_file");
  s.ca_key = c.Str("ca_key_file");
  s.issued_dir = c.Str("issued_dir");
  s.crl = c.Str("crl_file");
  s.prefix = c.Str("topic_prefix");
  s.log_level = c.Str("log_level");
  s.cert_days = static_cast<int>(c.Int("cert_days"));
  s.timeout_ms = static_cast<int>(c.Int("timeout_ms"));
  return s;
}

StatusOr<std::string> ReadText(const std::string& path) {
  std::ifstream in(path);
  if (!in) return NotFoundError("cannot read " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A connected AC session: transport + client on an event loop.
class Session {
 public:
  static StatusOr<std::unique_ptr<Session>> Open(const Settings& s) {
    std::unique_ptr<Session> x(new Session());
    KGR_ASSIGN_OR_RETURN(x->cms_, CmsEndpoint::Load(s.ca, s.cert, s.key));
    KGR_ASSIGN_OR_RETURN(Bytes ks_der, LoadCertificateDer(s.ks_cert));
    MqttOptions mo;
    KGR_RETURN_IF_ERROR(SplitHostPort(s.broker, &mo.host, &mo.port));
    mo.ca_file = s.ca;
    mo.cert_file = s.cert;
    mo.key_file = s.key;
    mo.client = s.mqtt_client;
    mo.qos = s.mqtt_qos;
    KGR_ASSIGN_OR_RETURN(x->transport_, NewMqttTransport(mo));
    x->client_ = std::make_unique<AcClient>(
        *x->transport_, *x->cms_, std::move(ks_der), *SystemClock(), s.prefix);
    Session* self = x.get();
    x->transport_->SetHandler([self](const std::string& t, Bytes p) {
      self->loop_.Post(
          [self, t, p = std::move(p)] { self->client_->HandleMessage(t, p); });
    });
    KGR_RETURN_IF_ERROR(x->transport_->Connect());
    KGR_RETURN_IF_ERROR(x->client_->Start());
    x->timeout_ms_ = s.timeout_ms;
    return x;
  }
  ~Session() {
    if (transport_) (void)transport_->Disconnect();
  }
  AcClient& client() { return *client_; }
  const CmsEndpoint& cms() const { return *cms_; }
  // Runs the loop until `done` or the timeout.
  Status Wait(const bool& done) {
    if (!loop_.RunUntil([&] { return done; }, nullptr, timeout_ms_)) {
      return DeadlineExceededError("the key server did not answer within " +
                                   std::to_string(timeout_ms_) + " ms");
    }
    return OkStatus();
  }
  // Asks one request and waits for its answer: `ask(client, done)` must
  // call done(answer) once (an answer after the timeout is dropped).
  template <typename T, typename Ask>
  T Call(Ask ask) {
    struct Answer {
      bool done = false;
      std::optional<T> value;
    };
    auto answer = std::make_shared<Answer>();
    ask(*client_, [answer](T r) {
      answer->value.emplace(std::move(r));
      answer->done = true;
    });
    Status st = Wait(answer->done);
    if (!st.ok()) return T(st);
    return std::move(*answer->value);
  }

 private:
  Session() = default;
  EventLoop loop_;
  std::unique_ptr<CmsEndpoint> cms_;
  std::unique_ptr<Transport> transport_;
  std::unique_ptr<AcClient> client_;
  int timeout_ms_ = 10000;
};

// The node's entry at the KS.
StatusOr<AcListAns::Entry> GetNode(Session& session, uint32_t node) {
  return session.Call<StatusOr<AcListAns::Entry>>(
      [node](AcClient& c, auto done) { c.GetNode(node, done); });
}

// Undoes an authorization that cannot be completed: revokes the fresh
// N_ID, so that nothing stays authorized; says so after `why`.
Status RevokeAfter(Session& session, uint32_t n_id, const Status& why) {
  auto r = session.Call<StatusOr<AcRevokeAns>>(
      [n_id](AcClient& c, auto done) { c.Revoke(n_id, done); });
  const std::string id = FormatNodeId(n_id);
  if (r.ok()) {
    return Status(why.code(),
                  why.message() + "; the new node " + id +
                      " was revoked at the KS again (nothing left authorized)");
  }
  return Status(why.code(), why.message() + "; revoking the new node " + id +
                                " failed too (" + r.status().message() +
                                "): run `kgr-ac revoke --node " + id + "`");
}

// After the KS authorized `ans`: the certificate, its copy, the file.
Status FinishAuthorize(const Settings& s, Session& session,
                       const AcAuthorizeAns& ans, const std::string& ca_pem,
                       StagedFile& out) {
  KGR_ASSIGN_OR_RETURN(
      IssuedCertificate cert,
      IssueNodeCertificate(s.ca, s.ca_key, ans.n_id, s.cert_days));
  Credentials c;
  c.n_id = ans.n_id;
  c.ntag = ans.ntag.Clone();
  c.broker_address = s.broker;
  c.topic_prefix = s.prefix;
  c.ks_n_id = ans.ks_n_id;
  c.ca_pem = ca_pem;
  c.cert_pem = cert.cert_pem;
  c.key_pem = std::move(cert.key_pem);
  KGR_ASSIGN_OR_RETURN(SecretBytes file,
                       EncodeCredentialFile(c, session.cms()));
  if (!s.issued_dir.empty()) {
    KGR_RETURN_IF_ERROR(DefaultFileSystem()->WriteFileAtomic(
        s.issued_dir + "/n" + FormatNodeId(c.n_id) + ".crt",
        AsBytes(c.cert_pem), 0644));
  }
  return out.Commit(file.span());
}

// Everything that can be checked is checked before the KS is asked; what
// fails after it authorized the node is undone (RevokeAfter).
Status CmdAuthorize(const Settings& s, const CommandLine& c) {
  if (!c.Has("out")) return InvalidArgumentError("authorize needs --out FILE");
  if (s.ca_key.empty()) return InvalidArgumentError("authorize needs --ca-key");
  KGR_ASSIGN_OR_RETURN(std::string ca_pem, ReadText(s.ca));
  // A throwaway certificate: the CA files and --cert-days work.
  KGR_RETURN_IF_ERROR(
      IssueNodeCertificate(s.ca, s.ca_key, 0, s.cert_days).status());
  FileSystem& fs = *DefaultFileSystem();
  std::unique_ptr<StagedFile> probe;
  if (!s.issued_dir.empty()) {
    KGR_RETURN_IF_ERROR(fs.CreateDir(s.issued_dir, 0755));
    KGR_ASSIGN_OR_RETURN(
        probe, StagedFile::Stage(fs, s.issued_dir + "/probe", 0644, 4096));
  }
  KGR_ASSIGN_OR_RETURN(auto out,
                       StagedFile::Stage(fs, c.Str("out"), 0600, 2 * 16384));
  KGR_ASSIGN_OR_RETURN(auto session, Session::Open(s));
  auto ans = session->Call<StatusOr<AcAuthorizeAns>>(
      [&c](AcClient& client, auto done) {
        client.Authorize(c.Ids("peers"), done);
      });
  if (!ans.ok()) return ans.status();
  Status st = FinishAuthorize(s, *session, *ans, ca_pem, *out);
  if (!st.ok()) return RevokeAfter(*session, ans->n_id, st);
  std::printf("authorized node %s (entry %u); credentials in %s\n",
              FormatNodeId(ans->n_id).c_str(), ans->entry_no,
              c.Str("out").c_str());
  return OkStatus();
}

// With --out, a failure after the KS changed the node's list puts the list
// back (allows or withdraws again exactly what changed).
Status CmdPeers(const Settings& s, const CommandLine& c) {
  if (!c.Has("node") || !c.Has("peers")) {
    return InvalidArgumentError("peers needs --node ID and --peers ID,ID");
  }
  const uint32_t node = c.Id("node");
  const std::vector<uint32_t>& peers = c.Ids("peers");
  const bool allow = !c.Bool("withdraw");
  std::unique_ptr<StagedFile> out;
  if (c.Has("out")) {
    KGR_ASSIGN_OR_RETURN(out, StagedFile::Stage(*DefaultFileSystem(),
                                                c.Str("out"), 0644, 16384));
  }
  KGR_ASSIGN_OR_RETURN(auto session, Session::Open(s));
  KGR_ASSIGN_OR_RETURN(AcListAns::Entry before, GetNode(*session, node));
  auto set = [&](bool allow_them, std::vector<uint32_t> ids) {
    return session->Call<Status>([&](AcClient& client, auto done) {
      client.SetPeers(node, allow_them, std::move(ids), done);
    });
  };
  KGR_RETURN_IF_ERROR(set(allow, peers));
  if (out) {
    auto after = GetNode(*session, node);
    Status st = after.status();
    if (st.ok()) {
      auto file = EncodePeerList({node, after->peers}, session->cms());
      st = file.ok() ? out->Commit(*file) : file.status();
    }
    if (!st.ok()) {
      std::vector<uint32_t> changed;
      for (uint32_t p : peers) {
        bool had = std::count(before.peers.begin(), before.peers.end(), p);
        if (had != allow) changed.push_back(p);
      }
      Status undo = changed.empty() ? OkStatus() : set(!allow, changed);
      return Status(st.code(),
                    st.message() + (undo.ok() ? "; the KS's list was put back"
                                              : "; putting the KS's list back "
                                                "failed too: " +
                                                    undo.message()));
    }
  }
  std::printf("%s %zu peer(s) of %s\n", allow ? "allowed" : "withdrew",
              peers.size(), FormatNodeId(node).c_str());
  return OkStatus();
}

Status CmdRevoke(const Settings& s, const CommandLine& c) {
  if (!c.Has("node")) return InvalidArgumentError("revoke needs --node ID");
  const uint32_t node = c.Id("node");
  std::string cert = s.issued_dir + "/n" + FormatNodeId(node) + ".crt";
  if (!s.crl.empty() &&
      (s.issued_dir.empty() || !DefaultFileSystem()->Exists(cert))) {
    return NotFoundError(
        "no issued certificate of the node in --issued-dir for --crl; "
        "nothing revoked");
  }
  KGR_ASSIGN_OR_RETURN(auto session, Session::Open(s));
  auto result = session->Call<StatusOr<AcRevokeAns>>(
      [node](AcClient& client, auto done) { client.Revoke(node, done); });
  if (!result.ok()) return result.status();
  std::printf("revoked %s; %u peer(s) told to wipe their pair\n",
              FormatNodeId(node).c_str(), result->peers_notified);
  if (s.crl.empty()) {
    std::printf("no --crl: the broker still accepts the node's certificate\n");
    return OkStatus();
  }
  KGR_RETURN_IF_ERROR(UpdateCrl(s.ca, s.ca_key, s.crl, cert, s.cert_days));
  std::printf("certificate added to %s: send SIGHUP to the broker to apply\n",
              s.crl.c_str());
  return OkStatus();
}

Status CmdCrl(const Settings& s) {
  if (s.crl.empty() || s.ca_key.empty()) {
    return InvalidArgumentError("crl needs --crl FILE and --ca-key");
  }
  KGR_RETURN_IF_ERROR(UpdateCrl(s.ca, s.ca_key, s.crl, "", s.cert_days));
  std::printf("wrote %s\n", s.crl.c_str());
  return OkStatus();
}

Status CmdList(const Settings& s, bool as_json) {
  KGR_ASSIGN_OR_RETURN(auto session, Session::Open(s));
  auto list = session->Call<StatusOr<AcListAns>>(
      [](AcClient& client, auto done) { client.List(done); });
  if (!list.ok()) return list.status();
  static const char* kStates[] = {"?", "authorized", "registered", "revoked"};
  nlohmann::json j = nlohmann::json::array();
  for (const auto& e : list->nodes) {
    nlohmann::json peers = nlohmann::json::array();
    for (uint32_t p : e.peers) peers.push_back(FormatNodeId(p));
    j.push_back({{"n_id", FormatNodeId(e.n_id)},
                 {"state", kStates[e.state < 4 ? e.state : 0]},
                 {"peers", peers}});
  }
  if (as_json) {
    std::cout << j.dump(2) << "\n";
  } else {
    for (const auto& n : j) {
      std::cout << n["n_id"].get<std::string>() << "  "
                << n["state"].get<std::string>() << "  peers:";
      for (const auto& p : n["peers"]) std::cout << " " << p.get<std::string>();
      std::cout << "\n";
    }
  }
  return OkStatus();
}

int Main(int argc, char** argv) {
  int exit_code = kExitUsage;
  auto flags = ParseOrExplain("kgr-ac", kUsage, argc, argv, kSpecs,
                              {"authorize", "peers", "list", "crl", "revoke"},
                              &exit_code);
  if (!flags) return exit_code;
  const CommandLine& f = *flags;
  auto settings = LoadSettings(f);
  if (!settings.ok()) {
    std::fprintf(stderr, "kgr-ac: %s\n", settings.status().message().c_str());
    return kExitUsage;
  }
  const Settings& s = *settings;
  SetupLogging(s.log_level);
  Status st;
  if (f.command == "authorize") {
    st = CmdAuthorize(s, f);
  } else if (f.command == "peers") {
    st = CmdPeers(s, f);
  } else if (f.command == "crl") {
    st = CmdCrl(s);
  } else if (f.command == "revoke") {
    st = CmdRevoke(s, f);
  } else {
    st = CmdList(s, f.Bool("json"));
  }
  if (!st.ok()) {
    std::fprintf(stderr, "kgr-ac %s: %s\n", f.command.c_str(),
                 st.ToString().c_str());
  }
  return ExitCodeFor(st);
}

}  // namespace
}  // namespace kgr

int main(int argc, char** argv) { return kgr::Main(argc, argv); }
