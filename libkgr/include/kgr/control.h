// Control socket: how `kgr-node <command>` and `kgr-ks status` talk to a
// running daemon. A Unix stream socket (mode 0600, in the state directory);
// one request per connection: one JSON object on one line in, one JSON
// object on one line out.
//
// Thread safety: ControlServer runs its own accept thread and hands each
// request to `handler` on that thread; the handler must post work to the
// daemon's EventLoop and call `respond` exactly once (from any thread).
#ifndef KGR_CONTROL_H_
#define KGR_CONTROL_H_

#include <atomic>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "kgr/status.h"

namespace kgr {

class ControlServer {
 public:
  using Respond = std::function<void(nlohmann::json)>;
  using Handler = std::function<void(nlohmann::json request, Respond respond)>;

  ~ControlServer();
  // Binds `path` (an existing stale socket file is replaced) and starts.
  static StatusOr<std::unique_ptr<ControlServer>> Start(const std::string& path,
                                                        Handler handler);
  void Stop();

 private:
  ControlServer() = default;
  void AcceptLoop();

  std::string path_;
  int fd_ = -1;
  Handler handler_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// Sends `request` to the daemon at `path` and waits up to `timeout_ms` for
// the answer. UNAVAILABLE if no daemon listens there.
StatusOr<nlohmann::json> ControlCall(const std::string& path,
                                     const nlohmann::json& request,
                                     int timeout_ms);

// Takes an exclusive advisory lock (flock) on `path` for the life of the
// returned object: one process per state directory. FAILED_PRECONDITION if
// another process holds it.
class DirLock {
 public:
  static StatusOr<std::unique_ptr<DirLock>> Acquire(const std::string& path);
  // Creates the state directory `dir` (mode 0700) if missing and locks
  // `dir`/lock: one kgr process per state directory. If this call created
  // `dir` and nothing but the lock is in it when the lock is released (the
  // command failed before writing anything), the lock file and `dir` are
  // removed: a failed command leaves no directory behind.
  static StatusOr<std::unique_ptr<DirLock>> ForStateDir(const std::string& dir);
  ~DirLock();

 private:
  int fd_ = -1;
  std::string created_dir_;  // set by ForStateDir if it made the directory
};

}  // namespace kgr

#endif  // KGR_CONTROL_H_
