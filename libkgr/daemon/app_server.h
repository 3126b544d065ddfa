// The application API's socket (docs/api.md): a Unix stream socket, one I/O
// thread for every connection (poll), frames of kgr/app_wire.h. Requests go
// to callbacks (which post them to the daemon's loop); the loop sends
// answers and events back with Send(), which never blocks: each connection
// has its own bounded queue, so a slow application cannot hold up the daemon
// or the others. Internal to libkgr/daemon/.
#ifndef KGR_DAEMON_APP_SERVER_H_
#define KGR_DAEMON_APP_SERVER_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "kgr/app_wire.h"
#include "kgr/status.h"

namespace kgr {

struct AppServerOptions {
  std::string path;   // the socket; a stale socket file there is replaced
  std::string group;  // non-empty: the socket's group, mode 0660 (else 0600)
  // Events (delivered messages, key events) queued for one connection at
  // most; beyond, they are dropped and counted ("dropped" event).
  size_t queue_messages = 1024;
  size_t queue_bytes = 8 << 20;
};

class AppServer {
 public:
  struct Callbacks {  // called on the I/O thread
    std::function<void(uint64_t conn, uint32_t uid)> opened;
    std::function<void(uint64_t conn, nlohmann::json request)> request;
    std::function<void(uint64_t conn)> closed;
  };
  static StatusOr<std::unique_ptr<AppServer>> Start(AppServerOptions options,
                                                    Callbacks callbacks);
  ~AppServer();
  void Stop();

  // Thread-safe; never blocks. An answer (`event` false) is always queued
  // (a connection whose answers pile up beyond 4 x queue_bytes is closed);
  // an event is dropped and counted when the connection's queue is full.
  // False if it was not queued.
  bool Send(uint64_t conn, const nlohmann::json& message, bool event);
  // Closes `conn` once what is queued for it is written.
  void CloseAfterWrite(uint64_t conn);
  // Whether an event of `frame_bytes` (EncodeAppFrame) would be queued for
  // `conn` now, not dropped. Thread-safe.
  bool HasRoomForEvent(uint64_t conn, size_t frame_bytes) const;
  // Events dropped for `conn` so far (0 for an unknown one).
  uint64_t Dropped(uint64_t conn) const;
  uint64_t TotalDropped() const { return total_dropped_; }
  size_t Connections() const;

 private:
  struct Out {
    std::string bytes;
    bool event = false;
  };
  struct Conn {
    int fd = -1;
    AppFrameReader reader;
    std::deque<Out> out;
    size_t out_offset = 0;  // of out.front() already written
    size_t out_bytes = 0;
    size_t out_events = 0;
    uint64_t dropped = 0;         // in all
    uint64_t dropped_unsaid = 0;  // not yet told in a "dropped" event
    bool closing = false;
  };
  explicit AppServer(AppServerOptions options, Callbacks callbacks)
      : options_(std::move(options)), callbacks_(std::move(callbacks)) {}
  Status Listen();
  void Loop();
  void Accept();
  // Reads what `id` sent; false if the connection ended.
  bool ReadFrom(uint64_t id, int fd);
  // Writes what is queued for `id`; false if the connection failed.
  bool WriteTo(uint64_t id);
  void CloseConn(uint64_t id);
  void Wake();
  // Queues `bytes` for `c` (mu_ held).
  void Queue(Conn& c, std::string bytes, bool event);

  const AppServerOptions options_;
  const Callbacks callbacks_;
  int listen_fd_ = -1;
  int wake_fd_ = -1;
  mutable std::mutex mu_;
  std::map<uint64_t, Conn> conns_;
  uint64_t next_id_ = 1;
  std::atomic<uint64_t> total_dropped_{0};
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace kgr

#endif  // KGR_DAEMON_APP_SERVER_H_
