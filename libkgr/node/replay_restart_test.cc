// Issue 19, failure 5: a node that stops (SIGTERM, kill, power loss) and
// starts again never accepts a data frame twice, and its usage counters
// (what the lifetime policy limits) never go back.
#include <gtest/gtest.h>

#include "node/mini_ked_test.h"

namespace kgr {
namespace {

using testing::MiniKed;
using testing::MiniNode;
using testing::PublishedMessage;

class ReplayRestartTest : public MiniKed {
 protected:
  void ReplayIsRefusedAfter(Stop how) {
    auto [a, b] = Pair();
    ASSERT_TRUE(Send(*a, *b, "first").ok());
    PublishedMessage frame = LastDataFrame(*a, *b);
    int received = b->data_received;
    // Right after the frame: no Tick of b in between.
    RestartNode(*b, how);
    Replay(frame);
    EXPECT_EQ(b->data_received, received) << "a replayed frame was accepted";
    // The pair still works.
    EXPECT_TRUE(Send(*a, *b, "second").ok());
    EXPECT_EQ(b->data_received, received + 1);
  }
};

TEST_F(ReplayRestartTest, ReplayRefusedAfterCleanRestart) {
  ReplayIsRefusedAfter(Stop::kClean);
}

TEST_F(ReplayRestartTest, ReplayRefusedAfterKill) {
  ReplayIsRefusedAfter(Stop::kKill);
}

TEST_F(ReplayRestartTest, ReplayRefusedAfterPowerLoss) {
  ReplayIsRefusedAfter(Stop::kPowerLoss);
}

TEST_F(ReplayRestartTest, ReplayRefusedAfterRestartsWhileDataFlows) {
  auto [a, b] = Pair();
  std::vector<PublishedMessage> frames;
  for (int round = 0; round < 6; ++round) {
    for (int i = 0; i < 5; ++i) {
      ASSERT_TRUE(Send(*a, *b, "data").ok());
      frames.push_back(LastDataFrame(*a, *b));
    }
    RestartNode(*b, static_cast<Stop>(round % 3));
    int received = b->data_received;
    for (const PublishedMessage& f : frames) Replay(f);
    ASSERT_EQ(b->data_received, received) << "round " << round;
  }
}

TEST_F(ReplayRestartTest, ACleanRestartCostsNoGap) {
  auto [a, b] = Pair();
  ASSERT_TRUE(Send(*a, *b, "x").ok());
  RestartNode(*b, Stop::kClean);
  // The sender's next frame, within the same millisecond, is accepted at
  // once (no reservation left over from before the stop).
  a->client->Send(b->n_id, SecretBytes(AsBytes(std::string("y"))),
                  [](StatusOr<SecretBytes>) {});
  int received = b->data_received;
  broker_.Pump();
  EXPECT_EQ(b->data_received, received + 1);
}

TEST_F(ReplayRestartTest, FewSyncsWhileDataFlows) {
  auto [a, b] = Pair();
  ASSERT_TRUE(Send(*a, *b, "warm up").ok());
  int syncs = b->fs.Count(testing::FakeFileSystem::Op::kSync);
  // 100 frames in 10 s.
  for (int i = 0; i < 100; ++i) {
    clock_.AdvanceMillis(100);
    ASSERT_TRUE(Send(*a, *b, "d").ok());
  }
  int used = b->fs.Count(testing::FakeFileSystem::Op::kSync) - syncs;
  EXPECT_LE(used, 15) << "about one sync per second of traffic at most";
}

void ExpectUsage(const MiniNode& n, uint32_t peer, uint64_t frames,
                 uint64_t bytes, uint64_t slack_frames, uint64_t slack_bytes) {
  auto k = n.ses->Get(peer);
  ASSERT_TRUE(k.ok());
  EXPECT_GE(k->frames_sent, frames);
  EXPECT_LE(k->frames_sent, frames + slack_frames);
  EXPECT_GE(k->bytes_sent, bytes);
  EXPECT_LE(k->bytes_sent, bytes + slack_bytes);
}

TEST_F(ReplayRestartTest, UsageCountersSurviveRestarts) {
  auto [a, b] = Pair();
  for (int i = 0; i < 7; ++i) ASSERT_TRUE(Send(*a, *b, "12345").ok());
  RestartNode(*a, Stop::kClean);
  ExpectUsage(*a, b->n_id, 7, 35, 0, 0);  // exact after a clean stop
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(Send(*a, *b, "12345").ok());
  RestartNode(*a, Stop::kKill);
  // Never below what was used; above by at most one reservation.
  ExpectUsage(*a, b->n_id, 10, 50, kUsageReserveFrames, kUsageReserveBytes);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(Send(*a, *b, "12345").ok());
  uint64_t frames = a->ses->Get(b->n_id)->frames_sent;
  uint64_t bytes = a->ses->Get(b->n_id)->bytes_sent;
  RestartNode(*a, Stop::kPowerLoss);
  ExpectUsage(*a, b->n_id, frames, bytes, kUsageReserveFrames,
              kUsageReserveBytes);
  // A renewal starts the new key's counters from 0.
  ASSERT_TRUE(RequestKey(*a, *b, /*renew=*/true).ok());
  ExpectUsage(*a, b->n_id, 0, 0, 0, 0);
  ASSERT_TRUE(Send(*a, *b, "12345").ok());
  RestartNode(*a, Stop::kPowerLoss);
  ExpectUsage(*a, b->n_id, 1, 5, kUsageReserveFrames, kUsageReserveBytes);
}

TEST_F(ReplayRestartTest, ThePolicyLimitHoldsAcrossRestarts) {
  node_options_.policy.max_frames = 10;
  node_options_.policy.renew_at = 2;  // no automatic renewal: the limit
  node_options_.policy.jitter = 0;
  auto [a, b] = Pair();
  // Clean restarts after every third frame: exactly the limit is sent.
  auto send_until_refused = [&, a = a, b = b](Stop how) {
    int sent = 0;
    for (int i = 0; i < 20; ++i) {
      Status st = Send(*a, *b, "d").status();
      if (!st.ok()) {
        EXPECT_EQ(st.code(), StatusCode::kResourceExhausted) << st.ToString();
        break;
      }
      if (++sent % 3 == 0) RestartNode(*a, how);
    }
    return sent;
  };
  EXPECT_EQ(send_until_refused(Stop::kClean), 10);
  // With kills, never more (each kill may bring the limit closer: a
  // reservation, and the frames sent again while the window's reservation
  // gap refuses the peer's answers).
  ASSERT_TRUE(RequestKey(*a, *b, /*renew=*/true).ok());
  int received = b->data_received;
  int sent = send_until_refused(Stop::kKill);
  EXPECT_LE(sent, 10);
  EXPECT_GT(sent, 3);
  EXPECT_LE(b->data_received - received, 10);
}

}  // namespace
}  // namespace kgr
