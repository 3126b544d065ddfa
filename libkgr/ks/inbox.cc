#include <spdlog/spdlog.h>

#include <algorithm>

#include "kgr/key_server.h"
#include "ks/internal.h"

namespace kgr {

// ---- inbox ----

bool KeyServerInbox::Push(const std::string& topic, Bytes payload) {
  // The KeyServer's topics never change: comparing needs no lock.
  Lane* lane_of[] = {&lanes_[kAcLane], &lanes_[kRegisterLane],
                     &lanes_[kTopic1Lane]};
  Lane& lane = *lane_of[topic == ks_.ac_topic()         ? 0
                        : topic == ks_.register_topic() ? 1
                                                        : 2];
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (lane.messages.size() >= max_messages_ ||
        lane.bytes + payload.size() > max_bytes_) {
      dropped_.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
    lane.bytes += payload.size();
    lane.messages.push_back({topic, std::move(payload)});
    if (posted_) return true;
    posted_ = true;
  }
  if (!loop_.Post([this] { Drain(); })) {
    std::lock_guard<std::mutex> lock(mu_);
    posted_ = false;
    dropped_.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  return true;
}

void KeyServerInbox::Drain() {
  Lane batch[kLanes];
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (int i = 0; i < kLanes; ++i) std::swap(batch[i], lanes_[i]);
    posted_ = false;
  }
  // Bounded batches keep the latency of the first message low.
  constexpr size_t kMaxBatch = 256;
  for (const Lane& lane : batch) {
    std::span<const KeyServer::Message> all(lane.messages);
    for (size_t i = 0; i < all.size(); i += kMaxBatch) {
      ks_.HandleMessages(all.subspan(i, std::min(kMaxBatch, all.size() - i)));
    }
  }
}

}  // namespace kgr
