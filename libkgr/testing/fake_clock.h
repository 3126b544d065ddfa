// FakeClock: a manually advanced Clock for unit tests. Thread-safe.
#ifndef KGR_TESTING_FAKE_CLOCK_H_
#define KGR_TESTING_FAKE_CLOCK_H_

#include <atomic>

#include "kgr/clock.h"

namespace kgr::testing {

class FakeClock : public Clock {
 public:
  uint64_t NowUnixMicros() override { return unix_us_; }
  uint64_t NowMonotonicMillis() override { return mono_ms_; }
  void AdvanceMillis(uint64_t ms) {
    unix_us_ += ms * 1000;
    mono_ms_ += ms;
  }

 private:
  std::atomic<uint64_t> unix_us_{1'700'000'000'000'000};
  std::atomic<uint64_t> mono_ms_{1'000'000};
};

}  // namespace kgr::testing

#endif  // KGR_TESTING_FAKE_CLOCK_H_
