// AppClient: the C++ client of a kgr node's application API (docs/api.md).
// An application sends to and receives from peer nodes through its node's
// daemon; it never sees a key.
//
//   auto app = AppClient::Connect("/var/lib/kgr/app.sock", "collector");
//   (*app)->Subscribe();
//   while (auto ev = (*app)->NextEvent(-1); ev.ok())
//     if (ev->type == "message") ...
//
// Synchronous and not thread-safe: one connection per thread. Events that
// arrive while a call waits for its answer are kept, in order, for
// NextEvent().
#ifndef KGR_APP_CLIENT_H_
#define KGR_APP_CLIENT_H_

#include <cstdint>
#include <deque>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "kgr/app_wire.h"
#include "kgr/bytes.h"
#include "kgr/status.h"

namespace kgr {

// A received message or an event ("message", "key_ready", "key_renewed",
// "pair_withdrawn", "peer_revoked", "dropped").
struct AppEvent {
  std::string type;
  uint32_t peer = 0;
  uint32_t key_version = 0;
  uint64_t counter = 0;  // message: the frame counter it came under
  Bytes data;            // message
  bool request = false;  // message: answer it with Answer(token, ...)
  uint64_t token = 0;
  uint64_t count = 0;  // dropped: how many since the last such event
  // group_message, group_key_ready: the group (peer: the sender).
  uint32_t group = 0;
  bool sender_verified = false;  // group_message in a sender_auth group
};

class AppClient {
 public:
  // Connects and says hello (API version kAppApiVersion).
  static StatusOr<std::unique_ptr<AppClient>> Connect(const std::string& path,
                                                      const std::string& name);
  ~AppClient();

  uint32_t n_id() const { return n_id_; }
  // One-way: OK once the peer's daemon queued `data` for an application.
  Status Send(uint32_t peer, const Bytes& data, uint64_t timeout_ms = 0);
  // Request/response: the peer application's answer.
  StatusOr<Bytes> Request(uint32_t peer, const Bytes& data,
                          uint64_t timeout_ms = 0);
  // Messages and events from `peers` (empty: every peer this user may use).
  Status Subscribe(const std::vector<uint32_t>& peers = {});
  Status Answer(uint64_t token, const Bytes& data);
  // Publishes `data` to a group this node is in (docs/api.md "Groups").
  Status GroupSend(uint32_t group, const Bytes& data);
  // Receive group_message and group_key_ready events (of `groups`; empty:
  // every group this user may use).
  Status GroupSubscribe(const std::vector<uint32_t>& groups = {});
  StatusOr<nlohmann::json> GetStatus();
  // The next event; DEADLINE_EXCEEDED after `timeout_ms` (-1: wait).
  StatusOr<AppEvent> NextEvent(int timeout_ms);

 private:
  explicit AppClient(int fd) : fd_(fd) {}
  StatusOr<nlohmann::json> Call(nlohmann::json request);
  // The next frame from the daemon within `timeout_ms` (-1: wait).
  StatusOr<nlohmann::json> Read(int timeout_ms);

  int fd_ = -1;
  uint32_t n_id_ = 0;
  uint64_t next_id_ = 1;
  AppFrameReader reader_;
  std::deque<nlohmann::json> events_;
};

}  // namespace kgr

#endif  // KGR_APP_CLIENT_H_
