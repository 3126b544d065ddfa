// Token buckets per key: at most `rate` events per second on average with
// bursts of `burst`. Used by the KS to bound the work any one sender can
// cause. Not thread-safe. Memory: one entry per key seen; callers only feed
// keys from a bounded set (known N_IDs).
#ifndef KGR_RATE_LIMITER_H_
#define KGR_RATE_LIMITER_H_

#include <cstdint>
#include <unordered_map>

namespace kgr {

class RateLimiter {
 public:
  RateLimiter(double rate_per_s, double burst)
      : rate_(rate_per_s), burst_(burst) {}
  // True (and one token spent) if `key` may act at monotonic time `now_ms`.
  bool Allow(uint64_t key, uint64_t now_ms) {
    auto [it, fresh] = buckets_.try_emplace(key, Bucket{burst_, now_ms});
    Bucket& b = it->second;
    if (!fresh && now_ms > b.last_ms) {
      b.tokens += (now_ms - b.last_ms) * rate_ / 1000.0;
      if (b.tokens > burst_) b.tokens = burst_;
      b.last_ms = now_ms;
    }
    if (b.tokens < 1.0) return false;
    b.tokens -= 1.0;
    return true;
  }

 private:
  struct Bucket {
    double tokens;
    uint64_t last_ms;
  };
  double rate_, burst_;
  std::unordered_map<uint64_t, Bucket> buckets_;
};

}  // namespace kgr

#endif  // KGR_RATE_LIMITER_H_
