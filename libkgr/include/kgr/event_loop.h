// EventLoop: one thread runs every procedure step of a daemon, so the
// procedure classes (KeyServer, NodeClient) need no locks. Other threads
// (the MQTT transport, the control socket, signal handling) Post() work.
//
// The queue is bounded: Post() refuses (returns false) when it is full, so a
// flood cannot grow memory without bound; the caller logs and drops.
#ifndef KGR_EVENT_LOOP_H_
#define KGR_EVENT_LOOP_H_

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>

namespace kgr {

class EventLoop {
 public:
  // At most `max_queue` tasks and `max_bytes` of declared payload queued.
  explicit EventLoop(size_t max_queue = 65536, size_t max_bytes = 64 << 20)
      : max_queue_(max_queue), max_bytes_(max_bytes) {}

  // Thread-safe. False if the queue is full (tasks or bytes) or the loop
  // stopped. `bytes` is what the task holds (e.g. a message's size).
  bool Post(std::function<void()> task, size_t bytes = 0);
  // Runs tasks until Stop(); calls `tick` at least every `tick_ms`.
  void Run(const std::function<void()>& tick, int tick_ms = 50);
  // Runs queued tasks until `done()` is true or `timeout_ms` passes; calls
  // `tick` as Run does. Returns done().
  bool RunUntil(const std::function<bool()>& done,
                const std::function<void()>& tick, int timeout_ms,
                int tick_ms = 20);
  // Thread-safe and async-signal-unsafe (do not call from a signal handler).
  void Stop();
  bool stopped() const;
  size_t dropped() const;

 private:
  // Pops and runs tasks for at most `wait_ms`; false when stopped.
  bool RunOnce(int wait_ms);

  struct Task {
    std::function<void()> fn;
    size_t bytes;
  };
  const size_t max_queue_;
  const size_t max_bytes_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Task> queue_;
  size_t queued_bytes_ = 0;
  bool stopped_ = false;
  size_t dropped_ = 0;
};

}  // namespace kgr

#endif  // KGR_EVENT_LOOP_H_
