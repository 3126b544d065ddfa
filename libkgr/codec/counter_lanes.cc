#include "kgr/counter_lanes.h"

namespace kgr {

bool LaneReplayWindows::IsFresh(uint64_t counter) const {
  auto it = windows_.find(CounterLane(counter));
  const uint64_t sequence = CounterSequence(counter);
  if (it == windows_.end()) return sequence > floor_;
  return it->second.IsFresh(sequence);
}

void LaneReplayWindows::Accept(uint64_t counter) {
  auto it = windows_.try_emplace(CounterLane(counter), floor_).first;
  it->second.Accept(CounterSequence(counter));
}

uint64_t LaneReplayWindows::highest(uint8_t lane) const {
  auto it = windows_.find(lane);
  const uint64_t sequence =
      it == windows_.end() ? floor_ : it->second.highest();
  return (uint64_t{lane} << FrameCounter::kLaneShift) | sequence;
}

}  // namespace kgr
