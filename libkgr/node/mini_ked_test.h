// The KED fixture (ked_fixture.h) for the tests of counters across restarts
// and of the KS's admission (replay_restart_test.cc,
// previous_key_replay_test.cc, flood_identity_test.cc): restarts by how the
// process stops, pairs that start with a first key, and replays.
#ifndef KGR_NODE_MINI_KED_TEST_H_
#define KGR_NODE_MINI_KED_TEST_H_

#include <optional>
#include <utility>

#include "node/ked_fixture.h"

namespace kgr::testing {

using MiniNode = KedNode;

class MiniKed : public KedFixture {
 protected:
  using KedFixture::RestartNode;

  enum class Stop { kClean, kKill, kPowerLoss };
  // The node's process stops and starts again. kClean: SIGTERM (the
  // daemon's shutdown path: Shutdown(), then the files are closed). kKill:
  // what the process held in memory is lost, what it wrote to its files is
  // not. kPowerLoss: every write not synced is lost too.
  void RestartNode(MiniNode& n, Stop how) {
    if (how == Stop::kClean) {
      EXPECT_TRUE(n.client->Shutdown().ok());
    }
    // A kill loses the unsynced writes the store still held in memory; a
    // clean close writes them to the file without a sync: a crash that
    // keeps only synced data models both.
    RestartNode(n, /*lose_queued=*/false,
                /*power_loss=*/how != Stop::kClean);
  }

  // Two registered nodes allowed to pair, peer lists loaded, a first key.
  std::pair<MiniNode*, MiniNode*> Pair() {
    auto pair = KedFixture::Pair();
    EXPECT_TRUE(RequestKey(*pair.first, *pair.second).ok());
    return pair;
  }

  // The last node_data_req `a` published to `b`.
  PublishedMessage LastDataFrame(MiniNode& a, MiniNode& b) {
    std::optional<PublishedMessage> last;
    for (PublishedMessage& m : broker_.published()) {
      auto h = PeekFrameHeader(m.payload);
      if (m.sender == NodeIdentity(a.n_id) && h.ok() &&
          h->type == FrameType::kNodeDataReq &&
          m.topic.starts_with("kgr/" + NodeIdentity(b.n_id) + "/")) {
        last = std::move(m);
      }
    }
    EXPECT_TRUE(last.has_value());
    return last.value_or(PublishedMessage{});
  }

  // Publishes `m` again (as any identity may) and delivers it.
  void Replay(const PublishedMessage& m) {
    auto t = broker_.NewTransport("attacker");
    ASSERT_TRUE(t->Connect().ok());
    ASSERT_TRUE(t->Publish(m.topic, m.payload).ok());
    broker_.Pump();
  }
};

}  // namespace kgr::testing

#endif  // KGR_NODE_MINI_KED_TEST_H_
