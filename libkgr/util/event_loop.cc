#include "kgr/event_loop.h"

#include <chrono>

namespace kgr {

bool EventLoop::Post(std::function<void()> task, size_t bytes) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopped_ || queue_.size() >= max_queue_ ||
        queued_bytes_ + bytes > max_bytes_) {
      ++dropped_;
      return false;
    }
    queue_.push_back({std::move(task), bytes});
    queued_bytes_ += bytes;
  }
  cv_.notify_one();
  return true;
}

bool EventLoop::RunOnce(int wait_ms) {
  std::deque<Task> batch;
  {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, std::chrono::milliseconds(wait_ms),
                 [&] { return stopped_ || !queue_.empty(); });
    if (stopped_) return false;
    batch.swap(queue_);
    queued_bytes_ = 0;
  }
  for (auto& task : batch) task.fn();
  return true;
}

void EventLoop::Run(const std::function<void()>& tick, int tick_ms) {
  auto next_tick = std::chrono::steady_clock::now();
  while (true) {
    auto now = std::chrono::steady_clock::now();
    if (now >= next_tick) {
      if (tick) tick();
      next_tick = now + std::chrono::milliseconds(tick_ms);
    }
    int wait = static_cast<int>(
        std::chrono::duration_cast<std::chrono::milliseconds>(next_tick - now)
            .count());
    if (!RunOnce(wait < 1 ? 1 : wait)) return;
  }
}

bool EventLoop::RunUntil(const std::function<bool()>& done,
                         const std::function<void()>& tick, int timeout_ms,
                         int tick_ms) {
  auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (!done()) {
    if (std::chrono::steady_clock::now() >= deadline) return done();
    if (tick) tick();
    if (!RunOnce(tick_ms)) return done();
  }
  return true;
}

void EventLoop::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopped_ = true;
  }
  cv_.notify_all();
}

bool EventLoop::stopped() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stopped_;
}

size_t EventLoop::dropped() const {
  std::lock_guard<std::mutex> lock(mu_);
  return dropped_;
}

}  // namespace kgr
