#include "daemon/node_control.h"

#include <string>
#include <vector>

#include "kgr/credentials.h"
#include "kgr/topic.h"

namespace kgr {
namespace {

nlohmann::json StatusAnswer(const NodeClient& client, const Tpm& tpm,
                            Clock& clock) {
  nlohmann::json pairs = nlohmann::json::array();
  uint64_t now = clock.NowUnixMillis();
  for (const PairInfo& p : client.Pairs()) {
    pairs.push_back(
        {{"peer", FormatNodeId(p.peer)},
         {"has_key", p.has_key},
         {"key_version", p.key_version},
         {"age_s", p.ctime_unix_ms ? (now - p.ctime_unix_ms) / 1000 : 0},
         {"frames_sent", p.frames_sent},
         {"bytes_sent", p.bytes_sent},
         {"policy_used_percent", static_cast<int>(p.used * 100)}});
  }
  return {{"ok", true},
          {"n_id", FormatNodeId(client.n_id())},
          {"registered", client.registered()},
          {"pairs", pairs},
          {"pending_requests", client.pending_requests()},
          {"nv_writes", tpm.counters().nv_writes},
          {"tpm", std::string(tpm.kind())}};
}

// The AC-signed peer list the request carries, for this node only.
Status LoadPeers(NodeClient& client, const nlohmann::json& req) {
  auto node = ParseNodeId(req.value("node", ""));
  if (!node.ok() || *node != client.n_id()) {
    return InvalidArgumentError("the peer list is for node " +
                                req.value("node", "?") + ", this is node " +
                                FormatNodeId(client.n_id()));
  }
  std::vector<uint32_t> ids;
  for (const auto& p : req.value("peers", nlohmann::json::array())) {
    auto id = ParseNodeId(p.is_string() ? p.get<std::string>() : "");
    if (!id.ok()) return id.status();
    ids.push_back(*id);
  }
  return client.LoadPeers(ids);
}

nlohmann::json GroupListAnswer(const NodeClient& client) {
  nlohmann::json groups = nlohmann::json::array();
  for (const GroupInfo& g : client.Groups()) {
    nlohmann::json members = nlohmann::json::array();
    for (uint32_t m : g.members) members.push_back(FormatNodeId(m));
    groups.push_back({{"group", FormatNodeId(g.group_id)},
                      {"mode", std::string(GroupModeName(g.mode))},
                      {"key_version", g.key_version},
                      {"previous_version", g.prev_version},
                      {"members", members}});
  }
  return {{"ok", true}, {"groups", groups}};
}

// group-send: publishes the request's data to the group under its key.
Status GroupSend(NodeClient& client, const nlohmann::json& req) {
  auto group = ParseNodeId(req.value("group", ""));
  if (!group.ok()) {
    return InvalidArgumentError("group: need 8 hex digits, got '" +
                                req.value("group", "") + "'");
  }
  return client.SendGroup(*group,
                          SecretBytes(AsBytes(req.value("data", ""))));
}

}  // namespace

nlohmann::json FailureAnswer(const Status& st) {
  return {{"ok", false},
          {"code", std::string(StatusCodeName(st.code()))},
          {"error", st.message()}};
}

Status StatusFromAnswer(const nlohmann::json& r) {
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

void ExecuteNodeCommand(NodeClient& client, const Tpm& tpm, Clock& clock,
                        const nlohmann::json& req,
                        ControlServer::Respond respond) {
  const std::string cmd = req.value("cmd", "");
  auto fail = [respond](const Status& st) { respond(FailureAnswer(st)); };
  auto done = [respond](Status st) {
    respond(st.ok() ? nlohmann::json{{"ok", true}} : FailureAnswer(st));
  };
  const uint64_t timeout = req.value("timeout_ms", uint64_t{0});
  if (cmd == "register") {
    client.Register(done, timeout);
  } else if (cmd == "rotate") {
    client.RotateNksk(done, timeout);
  } else if (cmd == "peers") {
    done(LoadPeers(client, req));
  } else if (cmd == "request-key" || cmd == "renew" || cmd == "send") {
    auto peer = ParseNodeId(req.value("peer", ""));
    if (!peer.ok()) return fail(peer.status());
    if (cmd != "send") {
      return client.RequestKey(*peer, cmd == "renew", done, timeout);
    }
    std::string data = req.value("data", "");
    client.Send(
        *peer, SecretBytes(AsBytes(data)),
        [respond, fail](StatusOr<SecretBytes> r) {
          if (!r.ok()) return fail(r.status());
          std::string reply(reinterpret_cast<const char*>(r->data()),
                            r->size());
          respond({{"ok", true}, {"reply", reply}});
        },
        timeout);
  } else if (cmd == "status") {
    respond(StatusAnswer(client, tpm, clock));
  } else if (cmd == "group-list") {
    respond(GroupListAnswer(client));
  } else if (cmd == "group-send") {
    done(GroupSend(client, req));
  } else {
    fail(InvalidArgumentError("unknown command '" + cmd + "'"));
  }
}

}  // namespace kgr
