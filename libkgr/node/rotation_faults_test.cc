// NKSK rotation and the node's other role (issue 19, failure 4): right after
// a rotation, asked by the node or by the KS, the node is still a peer: it
// takes the KS's notifications, confirmations and pair revocations, also
// when the rotation's answer was lost, the node gave up or restarted, or the
// KS restarted in the middle.
#include <gtest/gtest.h>

#include "node/ked_fixture.h"

namespace kgr::testing {
namespace {

class RotationFaultsTest : public KedFixture {
 protected:
  void SetUp() override {
    KedFixture::SetUp();
    auto [a, b] = Pair();
    a_ = a;
    b_ = b;
    ASSERT_TRUE(RequestKey(*a_, *b_).ok());
  }

  // After the rotation: each node asks for a key with the other (the
  // rotated node as the peer first), and data flows both ways.
  void ExpectBothRoles(KedNode& rotated, KedNode& other) {
    Status st = RequestKey(other, rotated, true);
    EXPECT_TRUE(st.ok()) << "as a peer: " << st.ToString();
    ExpectPairWorks(rotated, other);
    st = RequestKey(rotated, other, true);
    EXPECT_TRUE(st.ok()) << "as a requester: " << st.ToString();
    ExpectPairWorks(rotated, other);
    auto d = nodes_->Get(rotated.n_id);
    ASSERT_TRUE(d.ok());
    EXPECT_TRUE(
        NvKeys(rotated).nksk.RawEncKeyBytes().Equals(d->nksk.RawEncKeyBytes()));
    EXPECT_EQ(NvKeys(rotated).version, d->nksk_version);
  }

  KedNode* a_ = nullptr;
  KedNode* b_ = nullptr;
};

TEST_F(RotationFaultsTest, NodeRotatedByItselfIsAPeerRightAway) {
  ASSERT_TRUE(Rotate(*a_).ok());
  ExpectBothRoles(*a_, *b_);
}

TEST_F(RotationFaultsTest, NodeRotatedOnTheKsRequestIsAPeerRightAway) {
  ASSERT_TRUE(ks_->RequestRotation(a_->n_id).ok());
  ASSERT_TRUE(RunUntil([&] { return NvKeys(*a_).version == 2; }));
  ExpectBothRoles(*a_, *b_);
}

TEST_F(RotationFaultsTest, PairWithdrawnRightAfterRotationIsWiped) {
  ASSERT_TRUE(Rotate(*a_).ok());
  ASSERT_TRUE(ks_->SetPeers(AcPeersReq{a_->n_id, 0, {b_->n_id}}).ok());
  broker_.Pump();
  EXPECT_FALSE(a_->ses->Get(b_->n_id).ok());
  EXPECT_FALSE(b_->ses->Get(a_->n_id).ok());
}

// The node restarts (or loses power) between the rotation and its first
// frame under the new NKSK: only the new pair is in its NV.
TEST_F(RotationFaultsTest, NodeRestartedBeforeItsFirstFrameIsAPeer) {
  for (bool power : {false, true}) {
    SCOPED_TRACE(power ? "power loss" : "kill");
    ASSERT_TRUE(Rotate(*a_).ok());
    RestartNode(*a_, false, power);
    ExpectBothRoles(*a_, *b_);
  }
}

// The answer is lost and the node gives up (its process dies with the
// rotation pending): the KS holds the new pair, the node the old one. Both
// roles work, and the next rotation brings them together again.
TEST_F(RotationFaultsTest, LostAnswerAndAbandonedRotationLeaveTheNodeUsable) {
  a_->client->RotateNksk([](Status) {});
  ASSERT_TRUE(broker_.PumpOne());  // nksk_rot_req -> KS, which answers
  EXPECT_GT(broker_.DropQueuedFor(a_->transport->name()), 0u);
  RestartNode(*a_);
  ASSERT_EQ(NvKeys(*a_).version, 1u);
  ASSERT_EQ(nodes_->Get(a_->n_id)->nksk_version, 2u);
  Status st = RequestKey(*b_, *a_, true);
  EXPECT_TRUE(st.ok()) << st.ToString();
  st = RequestKey(*a_, *b_, true);
  EXPECT_TRUE(st.ok()) << st.ToString();
  ExpectPairWorks(*a_, *b_);
  ASSERT_TRUE(Rotate(*a_).ok());
  ExpectBothRoles(*a_, *b_);
}

// The KS is killed after storing the new pair and sending the answer.
TEST_F(RotationFaultsTest, KsRestartedInTheMiddleOfARotation) {
  for (bool power : {false, true}) {
    SCOPED_TRACE(power ? "power loss" : "kill");
    std::optional<Status> r;
    a_->client->RotateNksk([&](Status s) { r = s; });
    ASSERT_TRUE(broker_.PumpOne());  // nksk_rot_req -> KS, which answers
    RestartKs(false, power);
    ASSERT_TRUE(RunUntil([&] { return r.has_value(); }));
    ASSERT_TRUE(r->ok()) << r->ToString();
    ExpectBothRoles(*a_, *b_);
  }
}

// The node retransmits its request before the (slow) answer arrives: the KS
// answers the retransmission with the same agreement, so the node and the KS
// end with the same pair whichever answer the node takes.
TEST_F(RotationFaultsTest, RetransmittedRequestGetsTheSameAnswer) {
  std::optional<Status> r;
  a_->client->RotateNksk([&](Status s) { r = s; });
  clock_.AdvanceMillis(NodeClientOptions{}.first_retry_ms + 1);
  a_->client->Tick();  // the retransmission is queued behind the request
  ASSERT_TRUE(RunUntil([&] { return r.has_value(); }));
  ASSERT_TRUE(r->ok()) << r->ToString();
  RunFor(1000);
  ExpectBothRoles(*a_, *b_);
}

}  // namespace
}  // namespace kgr::testing
