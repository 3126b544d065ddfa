// Frame-counter lanes (docs/protocol.md section 3, docs/cluster.md): two KS
// instances under one KS identity, spread by a shared subscription, send a
// node frames in their own lanes. The node accepts every one of them, in any
// interleaving, and refuses a replay in either lane.
#include <gtest/gtest.h>

#include "kgr/counter_lanes.h"
#include "node/ked_fixture.h"

namespace kgr {
namespace {

using testing::FakeTransport;
using testing::KedFixture;
using testing::KedNode;
using testing::PublishedMessage;

class KsLanesTest : public KedFixture {
 protected:
  void SetUp() override {
    ks_options_.share_group = "ks";
    // The two instances share one store here; a cache would go stale.
    ks_options_.node_cache_entries = 0;
    KedFixture::SetUp();
    if (HasFatalFailure()) return;
    auto own = LoadOwnData(ks_tpm_);
    ASSERT_TRUE(own.ok());
    ks2_transport_ = broker_.NewTransport("ks2");
    ks2_transport_->SetHandler(
        [this](const std::string& t, Bytes p) { ks2_->HandleMessage(t, p); });
    ASSERT_TRUE(ks2_transport_->Connect().ok());
    KeyServerOptions o = ks_options_;
    o.counter_lane = 1;
    ks2_ = std::make_unique<KeyServer>(std::move(*own), *ks_tpm_.KedkPublic(),
                                       *ks2_transport_, *nodes_, *gen_keys_,
                                       nullptr, clock_, o);
    ASSERT_TRUE(ks2_->Start().ok());
    each_round_ = [this] { ks2_->Tick(); };
  }

  // Frames the KS instance `sender` published to node `n` ("ks", "ks2").
  std::vector<PublishedMessage> KsFramesTo(const KedNode& n,
                                           const std::string& sender,
                                           FrameType type) {
    std::vector<PublishedMessage> out;
    for (PublishedMessage& m : broker_.published()) {
      auto h = PeekFrameHeader(m.payload);
      if (m.sender == sender && h.ok() && h->type == type &&
          m.topic.starts_with("kgr/" + NodeIdentity(n.n_id) + "/")) {
        out.push_back(std::move(m));
      }
    }
    return out;
  }

  size_t PublishedBy(const KedNode& n) {
    size_t count = 0;
    for (const PublishedMessage& m : broker_.published()) {
      count += m.sender == NodeIdentity(n.n_id) ? 1 : 0;
    }
    return count;
  }

  std::unique_ptr<FakeTransport> ks2_transport_;
  std::unique_ptr<KeyServer> ks2_;
};

TEST_F(KsLanesTest, TwoInstancesInterleavingFramesAreAllAccepted) {
  auto [pa, pb] = Pair();
  KedNode& a = *pa;
  KedNode& b = *pb;
  ASSERT_TRUE(RequestKey(a, b).ok());
  for (int i = 0; i < 6; ++i) {
    ASSERT_TRUE(RequestKey(i % 2 ? a : b, i % 2 ? b : a, /*renew=*/true).ok())
        << "renewal " << i;
    ASSERT_TRUE(Send(a, b, "hello").ok());
  }
  ExpectPairWorks(a, b);
  // Both instances did part of the work, each in its own lane.
  for (const char* sender : {"ks", "ks2"}) {
    size_t frames = 0;
    for (FrameType t : {FrameType::kNnskKeyAns, FrameType::kNnskNotReq,
                        FrameType::kNnskConfReq}) {
      for (const PublishedMessage& m : KsFramesTo(a, sender, t)) {
        ++frames;
        EXPECT_EQ(CounterLane(PeekFrameHeader(m.payload)->counter),
                  sender == std::string("ks") ? 0 : 1);
      }
    }
    EXPECT_GT(frames, 0u) << sender << " sent node a nothing";
  }
  EXPECT_EQ(a.client->stats().frames_dropped, 0u);
  EXPECT_EQ(b.client->stats().frames_dropped, 0u);
}

TEST_F(KsLanesTest, AReplayInEitherLaneIsRefused) {
  auto [pa, pb] = Pair();
  KedNode& a = *pa;
  KedNode& b = *pb;
  for (int i = 0; i < 4; ++i) {
    ASSERT_TRUE(RequestKey(a, b, /*renew=*/i > 0).ok()) << i;
  }
  // A notification of the key b holds would be answered again (the same
  // key: the KS retransmits so): only the replay window stops a replay.
  for (const char* sender : {"ks", "ks2"}) {
    auto notes = KsFramesTo(b, sender, FrameType::kNnskNotReq);
    ASSERT_FALSE(notes.empty()) << sender;
    const size_t before = PublishedBy(b);
    const uint64_t dropped = b.client->stats().frames_dropped;
    auto attacker = broker_.NewTransport(std::string("attacker-") + sender);
    ASSERT_TRUE(attacker->Connect().ok());
    ASSERT_TRUE(
        attacker->Publish(notes.back().topic, notes.back().payload).ok());
    broker_.Pump();
    EXPECT_EQ(PublishedBy(b), before)
        << "a replay in " << sender << "'s lane was answered";
    EXPECT_EQ(b.client->stats().frames_dropped, dropped + 1);
  }
  EXPECT_TRUE(Send(a, b, "still paired").ok());
}

}  // namespace
}  // namespace kgr
