#include "kgr/counter_lanes.h"

#include <gtest/gtest.h>

namespace kgr {
namespace {

constexpr uint64_t kNow = 1'800'000'000'000'000;  // µs, in 2027

uint64_t InLane(uint8_t lane, uint64_t sequence) {
  return (uint64_t{lane} << 56) | sequence;
}

TEST(FrameCounterTest, LaneZeroIsThePlainCounter) {
  FrameCounter c(kNow + 5);
  EXPECT_EQ(c.Next(kNow), kNow + 6);
  EXPECT_EQ(c.Next(kNow + 100), kNow + 100);
  EXPECT_EQ(CounterLane(c.last()), 0);
}

TEST(FrameCounterTest, ALaneSetsTheTopBitsAndKeepsTheSequence) {
  FrameCounter c(InLane(3, kNow), 3);
  EXPECT_EQ(c.Next(kNow - 10), InLane(3, kNow + 1));
  EXPECT_EQ(c.Next(kNow + 50), InLane(3, kNow + 50));
  EXPECT_EQ(c.last(), InLane(3, kNow + 50));
  // A floor saved under another lane (the instance was renumbered) still
  // counts as the sequence's floor.
  FrameCounter moved(InLane(7, kNow), 2);
  EXPECT_EQ(moved.Next(0), InLane(2, kNow + 1));
}

TEST(LaneReplayWindowsTest, InterleavedLanesAreAllFresh) {
  LaneReplayWindows w;
  // Lane 1 runs far ahead of lane 0 in value: with one window, every lane-0
  // counter after it would look like an old replay.
  std::vector<uint64_t> frames;
  for (uint64_t i = 0; i < 200; ++i) {
    frames.push_back(InLane(static_cast<uint8_t>(i % 3), kNow + i / 3));
  }
  for (uint64_t c : frames) {
    ASSERT_TRUE(w.IsFresh(c)) << std::hex << c;
    w.Accept(c);
  }
  EXPECT_EQ(w.lanes(), 3u);
  for (uint64_t c : frames) EXPECT_FALSE(w.IsFresh(c)) << std::hex << c;
}

// Why lanes: with the one window a node had, the first frame of lane 1
// makes every lane-0 frame look like an old replay.
TEST(LaneReplayWindowsTest, OneWindowForAllLanesWouldRefuseLaneZero) {
  ReplayWindow one;
  one.Accept(InLane(1, kNow));
  EXPECT_FALSE(one.IsFresh(InLane(0, kNow + 1)));
  LaneReplayWindows lanes;
  lanes.Accept(InLane(1, kNow));
  EXPECT_TRUE(lanes.IsFresh(InLane(0, kNow + 1)));
}

TEST(LaneReplayWindowsTest, AReplayInAnyLaneIsRefused) {
  LaneReplayWindows w;
  for (uint8_t lane : {0, 1, 255}) {
    w.Accept(InLane(lane, kNow));
    w.Accept(InLane(lane, kNow + 2));
  }
  for (uint8_t lane : {0, 1, 255}) {
    EXPECT_FALSE(w.IsFresh(InLane(lane, kNow)));
    EXPECT_FALSE(w.IsFresh(InLane(lane, kNow + 2)));
    EXPECT_TRUE(w.IsFresh(InLane(lane, kNow + 1)));     // inside, not seen
    EXPECT_FALSE(w.IsFresh(InLane(lane, kNow - 100)));  // below the window
    EXPECT_EQ(w.highest(lane), InLane(lane, kNow + 2));
  }
  // A lane nobody used yet starts empty (above the floor 0).
  EXPECT_TRUE(w.IsFresh(InLane(9, 1)));
}

TEST(LaneReplayWindowsTest, ARestoredFloorHoldsInEveryLane) {
  LaneReplayWindows w(kNow);
  EXPECT_FALSE(w.IsFresh(InLane(0, kNow)));
  EXPECT_FALSE(w.IsFresh(InLane(4, kNow - 1)));
  EXPECT_TRUE(w.IsFresh(InLane(4, kNow + 1)));
  EXPECT_EQ(w.highest(4), InLane(4, kNow));
}

}  // namespace
}  // namespace kgr
