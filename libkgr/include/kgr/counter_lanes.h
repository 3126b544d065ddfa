// Frame-counter lanes: several KS instances of one cluster send under one KS
// identity, each in its own lane, so that their counters never collide and
// none pushes another's frames out of a receiver's replay window.
//
//   counter = lane:u8 << 56 | sequence:u56     (FrameCounter, kgr/frame.h)
//
// The sequence is the usual max(last + 1, now in µs), which needs 51 bits
// until the year 2041 and 56 until 4253. Lane 0 is what a single KS (and
// every node and the AC) has always sent, so nothing changes for them. A
// receiver of KS frames (node, AC) keeps one 64-wide ReplayWindow per lane
// (docs/protocol.md section 3, docs/cluster.md).
#ifndef KGR_COUNTER_LANES_H_
#define KGR_COUNTER_LANES_H_

#include <cstdint>
#include <map>

#include "kgr/frame.h"

namespace kgr {

inline constexpr unsigned kMaxCounterLane = 255;

inline uint8_t CounterLane(uint64_t counter) {
  return static_cast<uint8_t>(counter >> FrameCounter::kLaneShift);
}
inline uint64_t CounterSequence(uint64_t counter) {
  return counter & FrameCounter::kSequenceMask;
}

// One ReplayWindow per lane, created when the lane's first frame is
// accepted (after its MAC verified, so a forged header cannot make one);
// at most 256. A window restored at `floor` starts every lane there: a
// lane's counters at or below the floor's sequence count as seen.
// Not thread-safe.
class LaneReplayWindows {
 public:
  explicit LaneReplayWindows(uint64_t floor = 0)
      : floor_(CounterSequence(floor)) {}
  bool IsFresh(uint64_t counter) const;
  // Precondition: IsFresh(counter).
  void Accept(uint64_t counter);
  // The highest counter accepted in `lane` (with its lane bits), or the
  // floor's if none.
  uint64_t highest(uint8_t lane) const;
  size_t lanes() const { return windows_.size(); }

 private:
  uint64_t floor_;
  std::map<uint8_t, ReplayWindow> windows_;  // key: lane; value: sequences
};

}  // namespace kgr

#endif  // KGR_COUNTER_LANES_H_
