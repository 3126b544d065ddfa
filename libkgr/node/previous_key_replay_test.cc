// The receive floor of a pair's previous key is durable like the current
// key's (one path, NodeClient::ReserveRx): a frame the peer sent under the
// previous key while a renewal was in progress, replayed after a restart
// of the receiver, is refused.
#include <gtest/gtest.h>

#include "node/mini_ked_test.h"

namespace kgr {
namespace {

using testing::MiniKed;
using testing::PublishedMessage;

class PreviousKeyReplayTest : public MiniKed {
 protected:
  void ReplayIsRefusedAfter(Stop how) {
    auto [a, b] = Pair();
    // b renews: it uses v2 at once and keeps v1 as its previous key; a holds
    // v2 as its next key until it sees a frame under it, so it still sends
    // under v1, and b receives under its previous key.
    ASSERT_TRUE(RequestKey(*b, *a, /*renew=*/true).ok());
    auto kb = b->ses->Get(a->n_id);
    ASSERT_TRUE(kb.ok() && kb->has_previous());
    const uint32_t previous = kb->other_version;
    // Past the reservation the first key's floor got with its last frame.
    RunFor(3 * kRxReserveMicros / 1000);
    ASSERT_TRUE(Send(*a, *b, "under the previous key").ok());
    PublishedMessage frame = LastDataFrame(*a, *b);
    auto h = PeekFrameHeader(frame.payload);
    ASSERT_TRUE(h.ok());
    ASSERT_EQ(h->key_version, previous);
    auto after = b->ses->Get(a->n_id);
    ASSERT_TRUE(after.ok() && after->has_previous());
    EXPECT_GT(after->other_rx_counter, h->counter);
    int received = b->data_received;
    RestartNode(*b, how);
    Replay(frame);
    EXPECT_EQ(b->data_received, received) << "a replayed frame was accepted";
    ExpectPairWorks(*a, *b);
  }
};

TEST_F(PreviousKeyReplayTest, RefusedAfterKill) {
  ReplayIsRefusedAfter(Stop::kKill);
}

TEST_F(PreviousKeyReplayTest, RefusedAfterPowerLoss) {
  ReplayIsRefusedAfter(Stop::kPowerLoss);
}

}  // namespace
}  // namespace kgr
