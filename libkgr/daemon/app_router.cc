// The application API's operations and the sending side (app_router.h).
#include "daemon/app_router.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <utility>

#include "daemon/node_control.h"
#include "kgr/topic.h"

namespace kgr {
namespace {

// Messages waiting for one peer at most; beyond, send is refused.
constexpr size_t kMaxWaitingPerPeer = 4096;

nlohmann::json Ok(const nlohmann::json& id) {
  return {{"id", id}, {"ok", true}};
}

}  // namespace

AppRouter::AppRouter(NodeClient& client, AppServer& server, AppAccess access)
    : client_(client), server_(server), access_(std::move(access)) {
  client_.SetAsyncDataHandler(
      [this](const DataDelivery& from, SecretBytes data) {
        OnData(from, std::move(data));
      });
  client_.SetPairEndHandler(
      [this](uint32_t peer, PairEnd why) { OnPairEnd(peer, why); });
  client_.SetGroupMessageHandler(
      [this](const GroupMessage& m) { OnGroupMessage(m); });
  client_.SetGroupKeyHandler(
      [this](uint32_t group, uint32_t v) { OnGroupKey(group, v); });
  for (const PairInfo& p : client_.Pairs()) {
    if (p.has_key) key_versions_[p.peer] = p.key_version;
  }
}

void AppRouter::Opened(uint64_t conn, uint32_t uid) {
  if (!access_.Admits(uid)) {
    spdlog::warn("api: uid {} refused (not in api.users)", uid);
    Fail(conn, nullptr,
         PermissionDeniedError("uid " + std::to_string(uid) +
                               " may not use this node's API (api.users)"));
    server_.CloseAfterWrite(conn);
    return;
  }
  apps_[conn].uid = uid;
}

void AppRouter::Closed(uint64_t conn) { apps_.erase(conn); }

void AppRouter::Fail(uint64_t conn, const nlohmann::json& id,
                     const Status& st) {
  nlohmann::json answer = FailureAnswer(st);
  answer["id"] = id;
  server_.Send(conn, answer, false);
}

void AppRouter::Request(uint64_t conn, const nlohmann::json& m) {
  auto it = apps_.find(conn);
  if (it == apps_.end()) return;  // refused, or gone
  App& app = it->second;
  nlohmann::json id = m.contains("id") ? m["id"] : nlohmann::json();
  std::string op = m.value("op", "");
  if (!app.hello && op != "hello") {
    Fail(conn, id, FailedPreconditionError("the first request must be hello"));
    return server_.CloseAfterWrite(conn);
  }
  if (op == "hello") return Hello(conn, app, m);
  if (op == "send") return SendOp(conn, app, m);
  if (op == "subscribe") return SubscribeOp(conn, app, m);
  if (op == "answer") return AnswerOp(conn, app, m);
  if (op == "status") return StatusOp(conn, app, m);
  if (op == "group_send") return GroupSendOp(conn, app, m);
  if (op == "group_subscribe") return GroupSubscribeOp(conn, app, m);
  Fail(conn, id, InvalidArgumentError("unknown op '" + op + "'"));
}

void AppRouter::Hello(uint64_t conn, App& app, const nlohmann::json& m) {
  auto version = AppUintField(m, "version", std::nullopt);
  if (!version.ok())
    return Fail(conn, m.value("id", nlohmann::json()), version.status());
  if (*version != kAppApiVersion) {
    Fail(conn, m["id"],
         FailedPreconditionError("API version " + std::to_string(*version) +
                                 " not spoken here (this daemon: " +
                                 std::to_string(kAppApiVersion) + ")"));
    return server_.CloseAfterWrite(conn);
  }
  app.hello = true;
  nlohmann::json a = Ok(m["id"]);
  a["version"] = kAppApiVersion;
  a["n_id"] = FormatNodeId(client_.n_id());
  a["max_data"] = kAppMaxData;
  nlohmann::json peers = nlohmann::json::array();
  for (const PairInfo& p : client_.Pairs()) {
    if (access_.Allows(app.uid, p.peer)) peers.push_back(FormatNodeId(p.peer));
  }
  a["peers"] = peers;
  server_.Send(conn, a, false);
}

void AppRouter::SendOp(uint64_t conn, App& app, const nlohmann::json& m) {
  nlohmann::json id = m.value("id", nlohmann::json());
  auto peer = AppPeerField(m, "peer");
  if (!peer.ok()) return Fail(conn, id, peer.status());
  auto data = AppDataField(m, "data");
  if (!data.ok()) return Fail(conn, id, data.status());
  auto timeout = AppUintField(m, "timeout_ms", 0);
  if (!timeout.ok()) return Fail(conn, id, timeout.status());
  auto request = m.find("request");
  if (request != m.end() && !request->is_boolean()) {
    return Fail(conn, id, InvalidArgumentError("field 'request' not a bool"));
  }
  if (!access_.Allows(app.uid, *peer)) {
    return Fail(conn, id,
                PermissionDeniedError("uid " + std::to_string(app.uid) +
                                      " may not use peer " +
                                      FormatNodeId(*peer) + " (api.users)"));
  }
  PeerQueue& q = out_[*peer];
  if (q.waiting.size() >= kMaxWaitingPerPeer) {
    return Fail(conn, id,
                ResourceExhaustedError(std::to_string(kMaxWaitingPerPeer) +
                                       " messages already wait for peer " +
                                       FormatNodeId(*peer)));
  }
  q.waiting.push_back(
      Outgoing{.conn = conn,
               .id = id,
               .request = request != m.end() && *request,
               .data = std::move(*data),
               .timeout_ms = *timeout,
               .give_up_ms = now_ms_ + (*timeout ? *timeout : 10'000)});
  Pump(*peer);
}

void AppRouter::Pump(uint32_t peer) {
  PeerQueue& q = out_[peer];
  if (q.pumping) return;  // a synchronous completion inside Transmit
  q.pumping = true;
  while (!q.in_flight && !q.waiting.empty()) {
    Outgoing msg = std::move(q.waiting.front());
    q.waiting.pop_front();
    q.in_flight = true;
    Transmit(peer, std::move(msg));
  }
  q.pumping = false;
}

void AppRouter::Transmit(uint32_t peer, Outgoing msg) {
  Bytes wrapped = WrapAppMessage(
      msg.request ? AppKind::kRequest : AppKind::kOneWay, msg.data);
  uint64_t timeout = msg.timeout_ms;
  client_.Send(
      peer, SecretBytes(std::move(wrapped)),
      [this, peer, msg = std::move(msg)](StatusOr<SecretBytes> r) mutable {
        Sent(peer, std::move(msg), std::move(r));
      },
      timeout);
}

bool AppRouter::TryAgain(uint32_t peer, Outgoing& msg, const Status& why) {
  StatusCode c = why.code();
  if ((c != StatusCode::kFailedPrecondition && c != StatusCode::kAborted &&
       c != StatusCode::kResourceExhausted) ||
      now_ms_ >= msg.give_up_ms) {
    return false;
  }
  if (c == StatusCode::kFailedPrecondition && !msg.key_requested) {
    // No key with the peer yet: ask for one, then send.
    msg.key_requested = true;
    uint64_t timeout = msg.timeout_ms;
    client_.RequestKey(
        peer, false,
        [this, peer, msg = std::move(msg)](Status st) mutable {
          if (st.ok()) return Transmit(peer, std::move(msg));
          if (!TryAgain(peer, msg, st)) Sent(peer, std::move(msg), st);
        },
        timeout);
    return true;
  }
  PeerQueue& q = out_[peer];
  q.retry = std::move(msg);
  q.retry_at_ms = now_ms_ + 200;
  return true;
}

void AppRouter::Sent(uint32_t peer, Outgoing msg,
                     StatusOr<SecretBytes> answer) {
  if (!answer.ok() && TryAgain(peer, msg, answer.status())) return;
  out_[peer].in_flight = false;
  std::string who = "node " + FormatNodeId(peer);
  if (!answer.ok()) {
    Fail(msg.conn, msg.id, answer.status());
  } else if (auto e =
                 UnwrapApp(Bytes(answer->span().begin(), answer->span().end()));
             !e.has_value()) {
    Fail(msg.conn, msg.id,
         InternalError(who + " answered without the API's envelope"));
  } else if (e->code == static_cast<uint8_t>(AppAnswer::kNoReceiver)) {
    Fail(msg.conn, msg.id,
         UnavailableError("no application on " + who +
                          " takes messages from this node"));
  } else if (e->code == static_cast<uint8_t>(AppAnswer::kBusy)) {
    Fail(msg.conn, msg.id,
         ResourceExhaustedError("the applications on " + who +
                                " are not keeping up: send again later"));
  } else {
    nlohmann::json a = Ok(msg.id);
    if (e->code == static_cast<uint8_t>(AppAnswer::kAnswered)) {
      a["reply"] = Base64Encode(e->data);
    }
    server_.Send(msg.conn, a, false);
  }
  Pump(peer);
}

void AppRouter::SubscribeOp(uint64_t conn, App& app, const nlohmann::json& m) {
  nlohmann::json id = m.value("id", nlohmann::json());
  std::optional<std::set<uint32_t>> peers;
  if (m.contains("peers")) {
    if (!m["peers"].is_array()) {
      return Fail(conn, id, InvalidArgumentError("field 'peers' not a list"));
    }
    peers.emplace();
    for (const auto& p : m["peers"]) {
      auto peer = AppPeerField({{"peers", p}}, "peers");
      if (!peer.ok()) return Fail(conn, id, peer.status());
      if (!access_.Allows(app.uid, *peer)) {
        return Fail(
            conn, id,
            PermissionDeniedError("uid " + std::to_string(app.uid) +
                                  " may not use peer " + FormatNodeId(*peer) +
                                  " (api.users)"));
      }
      peers->insert(*peer);
    }
  }
  app.subscribed = true;
  app.peers = std::move(peers);
  server_.Send(conn, Ok(id), false);
}

void AppRouter::StatusOp(uint64_t conn, App& app, const nlohmann::json& m) {
  nlohmann::json a = Ok(m.value("id", nlohmann::json()));
  a["n_id"] = FormatNodeId(client_.n_id());
  a["registered"] = client_.registered();
  nlohmann::json pairs = nlohmann::json::array();
  for (const PairInfo& p : client_.Pairs()) {
    pairs.push_back({{"peer", FormatNodeId(p.peer)},
                     {"has_key", p.has_key},
                     {"key_version", p.key_version},
                     {"allowed", access_.Allows(app.uid, p.peer)}});
  }
  a["pairs"] = pairs;
  a["apps"] = apps_.size();
  a["dropped"] = server_.Dropped(conn);
  a["dropped_total"] = server_.TotalDropped();
  server_.Send(conn, a, false);
}

StatusOr<std::unique_ptr<AppApi>> AppApi::Start(const AppApiOptions& o,
                                                NodeClient& client,
                                                EventLoop& loop) {
  KGR_ASSIGN_OR_RETURN(
      AppAccess access,
      ParseAppAccess(o.users, static_cast<uint32_t>(geteuid())));
  std::unique_ptr<AppApi> api(new AppApi());
  api->client_ = &client;
  AppApi* self = api.get();
  auto post = [&loop](std::function<void()> task, size_t bytes) {
    return loop.Post(std::move(task), bytes);
  };
  AppServer::Callbacks cb{
      .opened =
          [self, post](uint64_t conn, uint32_t uid) {
            (void)post([self, conn, uid] { self->router_->Opened(conn, uid); },
                       0);
          },
      .request =
          [self, post](uint64_t conn, nlohmann::json m) {
            nlohmann::json id = m.value("id", nlohmann::json());
            if (!post([self, conn,
                       m = std::move(m)] { self->router_->Request(conn, m); },
                      256)) {
              AppServer* server = self->server_ready_.load();
              if (server == nullptr) return;
              server->Send(conn,
                           {{"id", id},
                            {"ok", false},
                            {"code", "UNAVAILABLE"},
                            {"error", "the daemon is busy: try again"}},
                           false);
            }
          },
      .closed =
          [self, post](uint64_t conn) {
            (void)post([self, conn] { self->router_->Closed(conn); }, 0);
          }};
  KGR_ASSIGN_OR_RETURN(api->server_, AppServer::Start(o.server, std::move(cb)));
  api->router_ =
      std::make_unique<AppRouter>(client, *api->server_, std::move(access));
  api->server_ready_ = api->server_.get();
  return api;
}

AppApi::~AppApi() {
  if (server_) server_->Stop();
  client_->SetAsyncDataHandler(nullptr);
  client_->SetPairEndHandler(nullptr);
}

}  // namespace kgr
