#include "kgr/clock.h"

#include <chrono>

namespace kgr {
namespace {

class RealClock : public Clock {
 public:
  uint64_t NowUnixMicros() override {
    return std::chrono::duration_cast<std::chrono::microseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
  uint64_t NowMonotonicMillis() override {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }
};

}  // namespace

Clock* SystemClock() {
  static RealClock* clock = new RealClock();
  return clock;
}

}  // namespace kgr
