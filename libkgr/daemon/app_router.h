// The application API's semantics on the daemon's loop (docs/api.md): who
// may use which peer (api.users), the operations of the applications (hello,
// send, subscribe, answer, status), one message in flight per peer so that a
// pair's messages arrive in order, delivery of received messages and events
// to the subscribed applications, and duplicates of retransmitted requests
// answered from memory instead of delivered again. Not thread-safe: every
// method runs on the loop thread. Internal to libkgr/daemon/.
#ifndef KGR_DAEMON_APP_ROUTER_H_
#define KGR_DAEMON_APP_ROUTER_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>

#include "daemon/app_server.h"
#include "kgr/app_wire.h"
#include "kgr/event_loop.h"
#include "kgr/node_client.h"

namespace kgr {

// Which local users (by the uid the kernel reports for the socket's peer)
// may use which peers: config api.users.
struct AppAccess {
  // uid -> its peers (nullopt: every peer). A uid not listed: the daemon's
  // own user may use every peer, any other user none.
  std::map<uint32_t, std::optional<std::set<uint32_t>>> users;
  uint32_t owner_uid = 0;
  bool Admits(uint32_t uid) const;
  bool Allows(uint32_t uid, uint32_t peer) const;
};
// api.users: {"<user name or uid>": ["<peer N_ID>", ...] or "*"}.
// INVALID_ARGUMENT naming the entry that is wrong.
StatusOr<AppAccess> ParseAppAccess(const nlohmann::json& users,
                                   uint32_t owner_uid);

class AppRouter {
 public:
  AppRouter(NodeClient& client, AppServer& server, AppAccess access);
  AppRouter(const AppRouter&) = delete;
  AppRouter& operator=(const AppRouter&) = delete;

  void Opened(uint64_t conn, uint32_t uid);
  void Request(uint64_t conn, const nlohmann::json& request);
  void Closed(uint64_t conn);
  // Messages tried again; key renewal events, expiry of remembered requests
  // (every 500 ms). Every loop tick.
  void Tick(uint64_t now_ms);

 private:
  struct App {
    uint32_t uid = 0;
    bool hello = false;
    bool subscribed = false;
    std::optional<std::set<uint32_t>> peers;  // subscribe's filter
    bool group_subscribed = false;
    std::optional<std::set<uint32_t>> groups;  // group_subscribe's filter
  };
  // A message an application asked to send, waiting for its turn.
  struct Outgoing {
    uint64_t conn = 0;
    nlohmann::json id;
    bool request = false;
    Bytes data;
    uint64_t timeout_ms = 0;
    uint64_t give_up_ms = 0;  // no more tries for want of a key after it
    bool key_requested = false;
  };
  struct PeerQueue {
    std::deque<Outgoing> waiting;
    bool in_flight = false;
    bool pumping = false;
    // The message in flight waits to be tried again at retry_at_ms.
    std::optional<Outgoing> retry;
    uint64_t retry_at_ms = 0;
  };
  // A request from a peer seen lately (its retransmissions carry the same
  // request id): answered (the answer kept), or waiting for an application.
  struct Seen {
    uint64_t at_ms = 0;
    bool answered = false;
    Bytes answer;
    uint64_t token = 0;
  };
  using SeenKey = std::pair<uint32_t, uint64_t>;  // peer, request id

  // Operations (app_router.cc).
  void Hello(uint64_t conn, App& app, const nlohmann::json& m);
  void SendOp(uint64_t conn, App& app, const nlohmann::json& m);
  void SubscribeOp(uint64_t conn, App& app, const nlohmann::json& m);
  void AnswerOp(uint64_t conn, App& app, const nlohmann::json& m);
  void StatusOp(uint64_t conn, App& app, const nlohmann::json& m);
  // Groups (app_groups.cc).
  void GroupSendOp(uint64_t conn, App& app, const nlohmann::json& m);
  void GroupSubscribeOp(uint64_t conn, App& app, const nlohmann::json& m);
  void OnGroupMessage(const GroupMessage& m);
  void OnGroupKey(uint32_t group_id, uint32_t key_version);
  // Sends `event` to every application subscribed to `group` that may use
  // it.
  void DeliverGroup(uint32_t group, const nlohmann::json& event);
  void Fail(uint64_t conn, const nlohmann::json& id, const Status& st);
  // Sends the next waiting message to `peer` if none is in flight.
  void Pump(uint32_t peer);
  void Transmit(uint32_t peer, Outgoing msg);
  void Sent(uint32_t peer, Outgoing msg, StatusOr<SecretBytes> answer);
  // Nothing was published for `msg` (no key yet, a key request crossed, a
  // renewal needed): asks for a key once, else tries again shortly. False
  // if its time is up.
  bool TryAgain(uint32_t peer, Outgoing& msg, const Status& why);

  // Receiving (app_delivery.cc).
  void OnData(const DataDelivery& from, SecretBytes data);
  void OnPairEnd(uint32_t peer, PairEnd why);
  // Queues `event` for every subscribed application that may hear from
  // `peer`; how many took it.
  int Deliver(uint32_t peer, const nlohmann::json& event);
  // Whether some application listening to `peer` has room for `event`. A
  // message none can take is refused ("send again later") and counted as
  // dropped by nobody: its sender sends it again.
  bool AnyoneHasRoom(uint32_t peer, const nlohmann::json& event) const;
  void Answer(uint32_t peer, uint64_t request_id, Bytes answer);
  bool Listens(const App& app, uint32_t peer) const;
  void ForgetOld(uint64_t now_ms);
  void KeyEvents();

  NodeClient& client_;
  AppServer& server_;
  const AppAccess access_;
  std::map<uint64_t, App> apps_;
  std::map<uint32_t, PeerQueue> out_;
  std::map<SeenKey, Seen> seen_;
  std::deque<std::pair<uint64_t, SeenKey>> seen_order_;  // (at_ms, key)
  std::map<uint64_t, SeenKey> tokens_;  // requests waiting for an answer
  uint64_t next_token_ = 1;
  std::map<uint32_t, uint32_t> key_versions_;  // for key_renewed events
  uint64_t now_ms_ = 0;
  uint64_t last_slow_tick_ms_ = 0;
};

// The application API of `kgr-node run`: socket, I/O thread and router.
struct AppApiOptions {
  AppServerOptions server;  // path: <state_dir>/app.sock unless api.socket
  nlohmann::json users = nlohmann::json::object();  // api.users
};
class AppApi {
 public:
  static StatusOr<std::unique_ptr<AppApi>> Start(const AppApiOptions& o,
                                                 NodeClient& client,
                                                 EventLoop& loop);
  ~AppApi();
  void Tick(uint64_t now_ms) { router_->Tick(now_ms); }

 private:
  AppApi() = default;
  NodeClient* client_ = nullptr;
  std::unique_ptr<AppServer> server_;
  std::unique_ptr<AppRouter> router_;
  // server_ for the I/O thread (set once the router is up; no request can
  // be refused for a full loop queue before: the loop has not run yet).
  std::atomic<AppServer*> server_ready_{nullptr};
};

}  // namespace kgr

#endif  // KGR_DAEMON_APP_ROUTER_H_
