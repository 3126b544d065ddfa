// kgr-ac peers, crl and list (authorize: ac_authorize.cc, revoke:
// ac_revoke.cc).
#include <algorithm>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "daemon/ac_session.h"
#include "kgr/cli.h"
#include "kgr/credentials.h"
#include "kgr/topic.h"

namespace kgr {
namespace {

// The node's entry at the KS.
StatusOr<AcListAns::Entry> GetNode(AcSession& session, uint32_t node) {
  return session.Call<StatusOr<AcListAns::Entry>>(
      [node](AcClient& c, auto done) { c.GetNode(node, done); });
}

// The node's signed peer list as it is at the KS now, into `out`.
Status WritePeerList(AcSession& session, uint32_t node, StagedFile& out) {
  KGR_ASSIGN_OR_RETURN(AcListAns::Entry after, GetNode(session, node));
  KGR_ASSIGN_OR_RETURN(Bytes file,
                       EncodePeerList({node, after.peers}, session.cms()));
  return out.Commit(file);
}

}  // namespace

// With --out, a failure after the KS changed the node's list puts the list
// back (allows or withdraws again exactly what changed).
Status AcPeers(const AcOptions& o, const AcArgs& a) {
  if (!a.node || !a.peers) {
    return InvalidArgumentError("peers needs --node ID and --peers ID,ID");
  }
  const uint32_t node = *a.node;
  const std::vector<uint32_t>& peers = *a.peers;
  const bool allow = !a.withdraw;
  std::unique_ptr<StagedFile> out;
  if (a.out) {
    KGR_ASSIGN_OR_RETURN(
        out, StagedFile::Stage(*DefaultFileSystem(), *a.out, 0644, 16384));
  }
  KGR_ASSIGN_OR_RETURN(auto session, AcSession::Open(o));
  KGR_ASSIGN_OR_RETURN(AcListAns::Entry before, GetNode(*session, node));
  auto set = [&](bool allow_them, std::vector<uint32_t> ids) {
    return session->Call<Status>([&](AcClient& client, auto done) {
      client.SetPeers(node, allow_them, std::move(ids), done);
    });
  };
  KGR_RETURN_IF_ERROR(set(allow, peers));
  if (out) {
    Status st = WritePeerList(*session, node, *out);
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

Status AcCrl(const AcOptions& o) {
  if (o.crl_file.empty() || o.ca_key_file.empty()) {
    return InvalidArgumentError("crl needs --crl FILE and --ca-key");
  }
  KGR_RETURN_IF_ERROR(
      UpdateCrl(o.IssuingCaFile(), o.ca_key_file, o.crl_file, "", o.cert_days));
  std::printf("wrote %s\n", o.crl_file.c_str());
  return RunCrlHook(o);
}

Status AcList(const AcOptions& o, bool as_json) {
  KGR_ASSIGN_OR_RETURN(auto session, AcSession::Open(o));
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
    return OkStatus();
  }
  for (const auto& n : j) {
    std::cout << n["n_id"].get<std::string>() << "  "
              << n["state"].get<std::string>() << "  peers:";
    for (const auto& p : n["peers"]) std::cout << " " << p.get<std::string>();
    std::cout << "\n";
  }
  return OkStatus();
}

}  // namespace kgr
