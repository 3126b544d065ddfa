// Issue 19, failure 6: frames that carry another node's N_ID cost that node
// nothing (the KS checks the MAC before it charges a node's budget),
// registration has a budget of its own, and the KS daemon's inbox keeps a
// lane per traffic class, so a flood of one class cannot push out another.
#include <gtest/gtest.h>

#include "kgr/event_loop.h"
#include "node/mini_ked_test.h"

namespace kgr {
namespace {

using testing::MiniKed;
using testing::MiniNode;

class FloodIdentityTest : public MiniKed {
 protected:
  void SetUp() override {
    MiniKed::SetUp();
    attacker_ = broker_.NewTransport("n0f100d00");  // any broker identity
    ASSERT_TRUE(attacker_->Connect().ok());
  }

  // A frame of `type` from `victim` as the header says, under keys the
  // attacker made up: it passes every check before the MAC.
  Bytes Forged(FrameType type, uint32_t victim) {
    FrameHeader h;
    h.sender = victim;
    h.key_version = type == FrameType::kNkskKeyReq ? 0 : 1;
    h.counter = (uint64_t{1} << 62) + ++forged_;
    h.request_id = forged_;
    auto keys = SymmetricKeys::Generate();
    StatusOr<Bytes> f =
        type == FrameType::kNkskKeyReq
            ? SealBody(h, NkskKeyReq{victim, SecretBytes(Bytes(32)), {}}, *keys)
            : SealBody(h, NnskKeyReq{victim, 1, {}}, *keys);
    EXPECT_TRUE(f.ok());
    return *f;
  }

  // Now and before every round of the fixture (so always ahead of the
  // victim's frames): `n` forged frames from `victim`.
  void FloodEachRound(const std::string& topic, FrameType type, uint32_t victim,
                      int n = 500) {
    each_round_ = [this, topic, type, victim, n] {
      for (int i = 0; i < n; ++i) {
        ASSERT_TRUE(attacker_->Publish(topic, Forged(type, victim)).ok());
      }
    };
    each_round_();
  }

  std::unique_ptr<testing::FakeTransport> attacker_;
  uint64_t forged_ = 0;
};

TEST_F(FloodIdentityTest, TheVictimRenewsUnderAFloodCarryingItsNId) {
  auto [a, b] = Pair();
  FloodEachRound(ks_->topic1(), FrameType::kNnskKeyReq, a->n_id);
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(RequestKey(*a, *b, /*renew=*/true).ok()) << "renewal " << i;
  }
  EXPECT_TRUE(Send(*a, *b, "still fine").ok());
  EXPECT_GE(ks_->stats().dropped_frames, 500u);
}

TEST_F(FloodIdentityTest, ANodeRegistersUnderARegistrationFloodWithItsNId) {
  MiniNode& n = AddNode();
  FloodEachRound(RegisterTopic("kgr"), FrameType::kNkskKeyReq, n.n_id);
  EXPECT_TRUE(Register(n).ok());
}

TEST_F(FloodIdentityTest, ATopic1FloodCannotDrainTheRegistrationBudget) {
  MiniNode& n = AddNode();
  FloodEachRound(ks_->topic1(), FrameType::kNnskKeyReq, n.n_id);
  EXPECT_TRUE(Register(n).ok());
}

TEST_F(FloodIdentityTest, ANodesOwnFloodCostsOnlyItself) {
  auto [a, b] = Pair();
  MiniNode& m = AddNode();
  ASSERT_TRUE(Register(m).ok());
  auto own = LoadOwnData(m.tpm);
  ASSERT_TRUE(own.ok());
  // Frames under m's own NKSK: they pass the MAC and are charged to m.
  each_round_ = [&] {
    for (int i = 0; i < 500; ++i) {
      FrameHeader h;
      h.sender = m.n_id;
      h.key_version = 1;
      h.counter = clock_.NowUnixMicros() + ++forged_;
      h.request_id = forged_;
      auto f = SealBody(h, NnskConfAns{0}, own->ks->nksk);
      ASSERT_TRUE(attacker_->Publish(ks_->topic1(), *f).ok());
    }
  };
  uint64_t limited = ks_->stats().rate_limited;
  each_round_();
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(RequestKey(*a, *b, /*renew=*/true).ok()) << "renewal " << i;
  }
  EXPECT_GT(ks_->stats().rate_limited, limited);
}

TEST_F(FloodIdentityTest, TheInboxKeepsALanePerTrafficClass) {
  EventLoop loop;
  KeyServerInbox inbox(*ks_, loop, /*max_messages=*/100, 1 << 20);
  auto junk = Forged(FrameType::kNnskKeyReq, 0x12345678);
  int accepted = 0;
  for (int i = 0; i < 500; ++i) accepted += inbox.Push(ks_->topic1(), junk);
  EXPECT_LE(accepted, 100);
  // TOPIC1 is full: registration and AC messages still get in.
  EXPECT_TRUE(inbox.Push(RegisterTopic("kgr"),
                         Forged(FrameType::kNkskKeyReq, 0x12345678)));
  EXPECT_TRUE(inbox.Push(AcRequestTopic("kgr"), Bytes(100)));
  uint64_t dropped = ks_->stats().dropped_frames;
  loop.RunUntil([&] { return ks_->stats().dropped_frames >= dropped + 102; },
                [] {}, 5000);
  // All of them reached the KS (and were dropped there: junk, no CMS).
  EXPECT_EQ(ks_->stats().dropped_frames, dropped + accepted + 2);
}

}  // namespace
}  // namespace kgr
