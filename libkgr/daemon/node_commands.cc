// kgr-node init and the commands that go to the daemon (register, peers,
// request-key, renew, send, status, rotate); run: node_service.cc.
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <string_view>

#include "daemon/node_control.h"
#include "daemon/node_service.h"
#include "daemon/wiring.h"
#include "kgr/credentials.h"
#include "kgr/node_daemon.h"
#include "kgr/topic.h"

namespace kgr {
namespace {

// The broker files, then the TPM (the part that cannot be undone) last.
Status InitFrom(const NodeOptions& o, const Credentials& c,
                uint64_t* nv_writes) {
  KGR_ASSIGN_OR_RETURN(auto lock, DirLock::ForStateDir(o.daemon.state_dir));
  FileSystem& fs = *DefaultFileSystem();
  KGR_RETURN_IF_ERROR(fs.CreateDir(o.daemon.state_dir + "/tls", 0700));
  KGR_RETURN_IF_ERROR(
      fs.WriteFileAtomic(NodeTlsPath(o, "ca.pem"), AsBytes(c.ca_pem), 0644));
  KGR_RETURN_IF_ERROR(fs.WriteFileAtomic(NodeTlsPath(o, "cert.pem"),
                                         AsBytes(c.cert_pem), 0644));
  KGR_RETURN_IF_ERROR(
      fs.WriteFileAtomic(NodeTlsPath(o, "key.pem"), c.key_pem.span(), 0600));
  KGR_ASSIGN_OR_RETURN(auto tpm, OpenTpmFor(o.daemon));
  KGR_RETURN_IF_ERROR(InitNode(*tpm, c).status());
  *nv_writes = tpm->counters().nv_writes;
  return OkStatus();
}

// The peer list file (its AC signature verified with the installed CA) as
// the request's "node" and "peers".
Status AddPeerList(const NodeOptions& o, const std::string& path,
                   nlohmann::json& req) {
  FileSystem& fs = *DefaultFileSystem();
  auto ca = fs.ReadFile(NodeTlsPath(o, "ca.pem"));
  if (!ca.ok()) {
    return ca.status().Annotate("no CA certificate: run `kgr-node init`");
  }
  KGR_ASSIGN_OR_RETURN(
      PeerList list,
      ReadPeerList(fs, path,
                   std::string_view(reinterpret_cast<const char*>(ca->data()),
                                    ca->size())));
  nlohmann::json ids = nlohmann::json::array();
  for (uint32_t id : list.peers) ids.push_back(FormatNodeId(id));
  req["peers"] = ids;
  req["node"] = FormatNodeId(list.node);
  return OkStatus();
}

StatusOr<nlohmann::json> BuildRequest(const NodeOptions& o,
                                      const NodeCommand& c) {
  nlohmann::json req{{"cmd", c.name},
                     {"timeout_ms", o.client.request_timeout_ms}};
  if (c.name == "peers") {
    if (!c.peers_file) return InvalidArgumentError("peers needs --file");
    KGR_RETURN_IF_ERROR(AddPeerList(o, *c.peers_file, req));
  }
  if (c.name == "request-key" || c.name == "renew" || c.name == "send") {
    if (!c.peer) return InvalidArgumentError(c.name + " needs --peer ID");
    req["peer"] = FormatNodeId(*c.peer);
  }
  if (c.name == "send" || c.name == "group-send") {
    if (!c.data) return InvalidArgumentError(c.name + " needs --data");
    req["data"] = *c.data;
  }
  if (c.name == "group-send") {
    if (!c.group) return InvalidArgumentError("group-send needs --group ID");
    req["group"] = FormatNodeId(*c.group);
  }
  return req;
}

void PrintNodeStatus(const nlohmann::json& r) {
  std::cout << "node " << r.value("n_id", "") << "  "
            << (r.value("registered", false) ? "registered" : "not registered")
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
}

void Print(const NodeCommand& c, const nlohmann::json& r) {
  if (c.name == "send") {
    std::printf("reply: %s\n", r.value("reply", "").c_str());
  } else if ((c.name == "status" || c.name == "group-list") && c.json) {
    std::cout << r.dump(2) << "\n";
  } else if (c.name == "status") {
    PrintNodeStatus(r);
  } else if (c.name == "group-list") {
    for (const auto& g : r["groups"]) {
      std::cout << "group " << g["group"].get<std::string>() << "  "
                << g["mode"].get<std::string>() << "  key v"
                << g["key_version"] << "  members " << g["members"].size()
                << "\n";
    }
  } else {
    std::printf("%s: ok\n", c.name.c_str());
  }
}

}  // namespace

// The credential file is verified completely (the AC's signature) before
// anything is written; a state directory this command created is removed
// again if it fails.
Status NodeInit(const NodeOptions& o, const std::string& path) {
  KGR_ASSIGN_OR_RETURN(Credentials c,
                       ReadCredentialFile(*DefaultFileSystem(), path));
  const bool fresh = !DefaultFileSystem()->Exists(o.daemon.state_dir);
  uint64_t nv_writes = 0;
  Status st = InitFrom(o, c, &nv_writes);
  if (!st.ok()) {
    std::error_code ec;
    if (fresh) std::filesystem::remove_all(o.daemon.state_dir, ec);
    return st;
  }
  std::printf("node %s initialized (nv_writes=%llu); delete %s now\n",
              FormatNodeId(c.n_id).c_str(),
              static_cast<unsigned long long>(nv_writes), path.c_str());
  return OkStatus();
}

Status RunNodeCommand(const NodeOptions& o, const NodeCommand& c) {
  KGR_ASSIGN_OR_RETURN(nlohmann::json req, BuildRequest(o, c));
  const int timeout_ms = static_cast<int>(o.client.request_timeout_ms);
  auto remote = ControlCall(ControlSocketPath(o.daemon.state_dir), req,
                            timeout_ms + 5000);
  if (remote.ok()) {
    KGR_RETURN_IF_ERROR(StatusFromAnswer(*remote));
    Print(c, *remote);
    return OkStatus();
  }
  if (remote.status().code() != StatusCode::kUnavailable) {
    return remote.status();
  }
  KGR_ASSIGN_OR_RETURN(auto svc, NodeService::Open(o));
  bool done = false;
  nlohmann::json answer;
  svc->Execute(req, [&](nlohmann::json r) {
    answer = std::move(r);
    done = true;
  });
  svc->loop().RunUntil([&] { return done; }, [&] { svc->client().Tick(); },
                       timeout_ms + 2000);
  if (!done) return DeadlineExceededError("no result in time");
  KGR_RETURN_IF_ERROR(StatusFromAnswer(answer));
  Print(c, answer);
  return OkStatus();
}

}  // namespace kgr
