// Clock: wall time for record timestamps and frame counters, monotonic time
// for deadlines. A fake in tests. Implementations are thread-safe.
#ifndef KGR_CLOCK_H_
#define KGR_CLOCK_H_

#include <cstdint>

namespace kgr {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual uint64_t NowUnixMicros() = 0;
  // Monotonic milliseconds (arbitrary epoch).
  virtual uint64_t NowMonotonicMillis() = 0;
  uint64_t NowUnixMillis() { return NowUnixMicros() / 1000; }
};

// Process-wide real clock; never deleted.
Clock* SystemClock();

}  // namespace kgr

#endif  // KGR_CLOCK_H_
