// kgr-ac: the Authorization Centre's operator commands.
#include <spdlog/spdlog.h>

#include <cstdio>
#include <fstream>
#include <iostream>
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
           issued with the CA key)
  peers --node ID --peers ID,ID... [--withdraw] [--out FILE]
           allow (or withdraw) pairs at the KS; with --out also write the
           node's peer list file for `kgr-node peers`
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

struct Settings {
  std::string broker, ca, cert, key, ks_cert, ca_key, prefix, log_level;
  MqttClient mqtt_client = MqttClient::kMosquitto;
  std::string issued_dir, crl;
  int cert_days = 365;
  int timeout_ms = 10000;
};

StatusOr<std::vector<uint32_t>> ParseIdList(const std::string& text) {
  std::vector<uint32_t> ids;
  std::stringstream ss(text);
  std::string part;
  while (std::getline(ss, part, ',')) {
    if (part.empty()) continue;
    KGR_ASSIGN_OR_RETURN(uint32_t id, ParseNodeId(part));
    ids.push_back(id);
  }
  return ids;
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
  // Runs the loop until `done` or the timeout.
  Status Wait(const bool& done) {
    if (!loop_.RunUntil([&] { return done; }, nullptr, timeout_ms_)) {
      return DeadlineExceededError("the key server did not answer within " +
                                   std::to_string(timeout_ms_) + " ms");
    }
    return OkStatus();
  }

 private:
  Session() = default;
  EventLoop loop_;
  std::unique_ptr<CmsEndpoint> cms_;
  std::unique_ptr<Transport> transport_;
  std::unique_ptr<AcClient> client_;
  int timeout_ms_ = 10000;
};

Status CmdAuthorize(const Settings& s, const Flags& f) {
  if (!f.values.count("out"))
    return InvalidArgumentError("authorize needs --out FILE");
  std::vector<uint32_t> peers;
  if (f.values.count("peers")) {
    KGR_ASSIGN_OR_RETURN(peers, ParseIdList(f.values.at("peers")));
  }
  if (s.ca_key.empty()) return InvalidArgumentError("authorize needs --ca-key");
  KGR_ASSIGN_OR_RETURN(std::string ca_pem, ReadText(s.ca));
  KGR_ASSIGN_OR_RETURN(auto session, Session::Open(s));
  bool done = false;
  StatusOr<AcAuthorizeAns> result = InternalError("no answer");
  session->client().Authorize(peers, [&](StatusOr<AcAuthorizeAns> r) {
    result = std::move(r);
    done = true;
  });
  KGR_RETURN_IF_ERROR(session->Wait(done));
  if (!result.ok()) return result.status();
  KGR_ASSIGN_OR_RETURN(
      IssuedCertificate cert,
      IssueNodeCertificate(s.ca, s.ca_key, result->n_id, s.cert_days));
  Credentials c;
  c.n_id = result->n_id;
  c.ntag = std::move(result->ntag);
  c.broker_address = s.broker;
  c.topic_prefix = s.prefix;
  c.ks_n_id = result->ks_n_id;
  c.ca_pem = ca_pem;
  c.cert_pem = cert.cert_pem;
  c.key_pem = std::move(cert.key_pem);
  if (!s.issued_dir.empty()) {
    KGR_RETURN_IF_ERROR(DefaultFileSystem()->CreateDir(s.issued_dir, 0755));
    KGR_RETURN_IF_ERROR(DefaultFileSystem()->WriteFileAtomic(
        s.issued_dir + "/n" + FormatNodeId(c.n_id) + ".crt",
        AsBytes(c.cert_pem), 0644));
  }
  KGR_RETURN_IF_ERROR(
      WriteCredentialFile(*DefaultFileSystem(), f.values.at("out"), c));
  std::printf("authorized node %s (entry %u); credentials in %s\n",
              FormatNodeId(c.n_id).c_str(), result->entry_no,
              f.values.at("out").c_str());
  return OkStatus();
}

Status CmdPeers(const Settings& s, const Flags& f) {
  if (!f.values.count("node") || !f.values.count("peers")) {
    return InvalidArgumentError("peers needs --node ID and --peers ID,ID");
  }
  KGR_ASSIGN_OR_RETURN(uint32_t node, ParseNodeId(f.values.at("node")));
  KGR_ASSIGN_OR_RETURN(auto peers, ParseIdList(f.values.at("peers")));
  bool allow = !f.Has("withdraw");
  KGR_ASSIGN_OR_RETURN(auto session, Session::Open(s));
  bool done = false;
  Status result;
  session->client().SetPeers(node, allow, peers, [&](Status st) {
    result = st;
    done = true;
  });
  KGR_RETURN_IF_ERROR(session->Wait(done));
  KGR_RETURN_IF_ERROR(result);
  if (f.values.count("out")) {
    // The node's full list as the KS now has it.
    bool got = false;
    StatusOr<AcListAns::Entry> entry = InternalError("no answer");
    session->client().GetNode(node, [&](StatusOr<AcListAns::Entry> r) {
      entry = std::move(r);
      got = true;
    });
    KGR_RETURN_IF_ERROR(session->Wait(got));
    if (!entry.ok()) return entry.status();
    KGR_RETURN_IF_ERROR(
        WritePeerList(*DefaultFileSystem(), f.values.at("out"), entry->peers));
  }
  std::printf("%s %zu peer(s) of %s\n", allow ? "allowed" : "withdrew",
              peers.size(), FormatNodeId(node).c_str());
  return OkStatus();
}

Status CmdRevoke(const Settings& s, const Flags& f) {
  if (!f.values.count("node"))
    return InvalidArgumentError("revoke needs --node ID");
  KGR_ASSIGN_OR_RETURN(uint32_t node, ParseNodeId(f.values.at("node")));
  KGR_ASSIGN_OR_RETURN(auto session, Session::Open(s));
  bool done = false;
  StatusOr<AcRevokeAns> result = InternalError("no answer");
  session->client().Revoke(node, [&](StatusOr<AcRevokeAns> r) {
    result = std::move(r);
    done = true;
  });
  KGR_RETURN_IF_ERROR(session->Wait(done));
  if (!result.ok()) return result.status();
  std::printf("revoked %s; %u peer(s) told to wipe their pair\n",
              FormatNodeId(node).c_str(), result->peers_notified);
  if (s.crl.empty()) {
    std::printf("no --crl: the broker still accepts the node's certificate\n");
    return OkStatus();
  }
  std::string cert = s.issued_dir + "/n" + FormatNodeId(node) + ".crt";
  if (s.issued_dir.empty() || !DefaultFileSystem()->Exists(cert)) {
    return NotFoundError(
        "no issued certificate of the node in --issued-dir; "
        "the broker still accepts it");
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
  bool done = false;
  StatusOr<AcListAns> list = InternalError("no answer");
  session->client().List([&](StatusOr<AcListAns> r) {
    list = std::move(r);
    done = true;
  });
  KGR_RETURN_IF_ERROR(session->Wait(done));
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
  auto flags =
      ParseFlags(argc, argv,
                 {"config", "broker", "ca", "cert", "key", "ks-cert", "ca-key",
                  "cert-days", "topic-prefix", "timeout-ms", "log-level", "out",
                  "peers", "issued-dir", "crl", "node", "mqtt-client"},
                 {"help", "json", "withdraw"});
  if (!flags.ok() || flags->Has("help") || flags->command.empty()) {
    if (!flags.ok())
      std::fprintf(stderr, "kgr-ac: %s\n\n", flags.status().message().c_str());
    std::fputs(kUsage, flags.ok() && flags->Has("help") ? stdout : stderr);
    return flags.ok() && flags->Has("help") ? kExitOk : kExitUsage;
  }
  auto config =
      LoadJsonConfig(flags->values.count("config") ? flags->values.at("config")
                                                   : std::string());
  if (!config.ok()) {
    std::fprintf(stderr, "kgr-ac: %s\n", config.status().ToString().c_str());
    return kExitUsage;
  }
  const Flags& f = *flags;
  Settings s;
  s.broker = Setting(f, *config, "broker", "broker", "127.0.0.1:8883");
  s.ca = Setting(f, *config, "ca", "tls.ca_file", "");
  auto mqtt_client = ParseMqttClient(
      Setting(f, *config, "mqtt-client", "mqtt_client", "mosquitto"));
  if (!mqtt_client.ok()) {
    std::fprintf(stderr, "kgr-ac: %s\n",
                 mqtt_client.status().ToString().c_str());
    return kExitUsage;
  }
  s.mqtt_client = *mqtt_client;
  s.cert = Setting(f, *config, "cert", "tls.cert_file", "");
  s.key = Setting(f, *config, "key", "tls.key_file", "");
  s.ks_cert = Setting(f, *config, "ks-cert", "ks_cert_file", "");
  s.ca_key = Setting(f, *config, "ca-key", "ca_key_file", "");
  s.issued_dir = Setting(f, *config, "issued-dir", "issued_dir", "");
  s.crl = Setting(f, *config, "crl", "crl_file", "");
  s.prefix =
      Setting(f, *config, "topic-prefix", "topic_prefix", kDefaultTopicPrefix);
  s.log_level = Setting(f, *config, "log-level", "log_level", "info");
  try {
    s.cert_days =
        std::stoi(Setting(f, *config, "cert-days", "cert_days", "365"));
    s.timeout_ms =
        std::stoi(Setting(f, *config, "timeout-ms", "timeout_ms", "10000"));
  } catch (const std::exception&) {
    std::fprintf(stderr, "kgr-ac: cert_days and timeout_ms must be numbers\n");
    return kExitUsage;
  }
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
  } else if (f.command == "list") {
    st = CmdList(s, f.Has("json"));
  } else {
    std::fprintf(stderr, "kgr-ac: unknown command '%s'\n\n%s",
                 f.command.c_str(), kUsage);
    return kExitUsage;
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
