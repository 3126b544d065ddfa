// Registration when the KS is away (issue 19, failure 1): a node that
// started while the KS was down is never bricked. Late answers to its
// registration request id register it; a node the KS holds as registered
// can always complete with its NTAG and TOPIC2 (until it first uses its
// NKSK); the daemon keeps registering for as long as it runs.
#include <gtest/gtest.h>

#include "node/ked_fixture.h"

namespace kgr::testing {
namespace {

class RegistrationFaultsTest : public KedFixture {
 protected:
  // A device holding a copy of `victim`'s credential file, broker key and
  // TOPIC2 (but its own TPM) tries to register. Returns how that ended;
  // on success `nksk` receives what it got.
  Status RegisterThief(KedNode& victim, SymmetricKeys* nksk) {
    FakeTpm tpm;
    return RegisterClone(victim, tpm, /*steal_topic=*/true, nksk);
  }

  size_t RegistrationRequestsPublished() {
    size_t n = 0;
    for (const auto& m : broker_.published()) {
      auto h = PeekFrameHeader(m.payload);
      if (h.ok() && h->type == FrameType::kNkskKeyReq) ++n;
    }
    return n;
  }

  void ExpectSameNksk(KedNode& n) {
    auto d = nodes_->Get(n.n_id);
    ASSERT_TRUE(d.ok());
    EXPECT_EQ(d->state, NodeState::kRegistered);
    KsKeysBlob blob = NvKeys(n);
    EXPECT_TRUE(blob.nksk.RawEncKeyBytes().Equals(d->nksk.RawEncKeyBytes()));
    EXPECT_TRUE(blob.nksk.RawMacKeyBytes().Equals(d->nksk.RawMacKeyBytes()));
  }
};

// The case: the registration's deadline passed while the KS was
// down; the KS comes back, processes the queued requests and answers. The
// node takes the answer although no registration is under way any more.
TEST_F(RegistrationFaultsTest, LateAnswerAfterTheDeadlineRegistersTheNode) {
  KedNode& a = AddNode();
  ks_transport_->SimulateDisconnect();
  EXPECT_EQ(Register(a, 2000).code(), StatusCode::kDeadlineExceeded);
  ks_transport_->SimulateReconnect();
  RunUntil([&] { return a.client->registered(); }, 20);
  ASSERT_TRUE(a.client->registered());
  ExpectSameNksk(a);
  EXPECT_EQ(ks_->stats().registrations, 1u);
}

// The answers are lost as well (the node was offline and its session gone):
// the KS holds the node as registered. An hour later `kgr-node register`
// completes with the keys the KS stored.
TEST_F(RegistrationFaultsTest, NodeTheKsHoldsAsRegisteredCompletesAnHourLater) {
  KedNode& a = AddNode();
  ks_transport_->SimulateDisconnect();
  EXPECT_EQ(Register(a, 2000).code(), StatusCode::kDeadlineExceeded);
  a.transport->SimulateDisconnect();
  ks_transport_->SimulateReconnect();
  broker_.Pump();
  ASSERT_EQ(nodes_->Get(a.n_id)->state, NodeState::kRegistered);
  broker_.DropQueuedFor(a.transport->name());
  a.transport->SimulateReconnect();
  broker_.Pump();
  clock_.AdvanceMillis(3'600'000);
  RestartKs();  // what the KS allows survives its restart
  RestartNode(a);
  ASSERT_FALSE(a.client->registered());
  Status st = Register(a);
  ASSERT_TRUE(st.ok()) << st.ToString();
  ExpectSameNksk(a);
  EXPECT_EQ(ks_->stats().registrations, 0u);  // answered, not registered anew
}

// The daemon's loop: KS away for ten minutes (and its queued messages lost),
// the node keeps asking at a capped rate and registers soon after the KS is
// back, without a restart.
TEST_F(RegistrationFaultsTest, DaemonKeepsRegisteringThroughATenMinuteOutage) {
  KedNode& a = AddNode();
  ks_transport_->SimulateDisconnect();
  a.client->KeepRegistering();
  RunFor(480'000);
  size_t early = RegistrationRequestsPublished();
  RunFor(120'000);
  size_t total = RegistrationRequestsPublished();
  EXPECT_FALSE(a.client->registered());
  EXPECT_GT(total, early) << "no attempt in the last two minutes";
  // Back-off: each attempt is a few retransmissions, attempts at most
  // about a minute apart once the outage is long.
  EXPECT_LT(total, 120u);
  EXPECT_LT(total - early, 25u);
  broker_.DropQueuedFor("ks");
  ks_transport_->SimulateReconnect();
  uint64_t back = clock_.NowMonotonicMillis();
  ASSERT_TRUE(RunUntil([&] { return a.client->registered(); }, 1000));
  EXPECT_LE(clock_.NowMonotonicMillis() - back, 90'000u);
  ExpectSameNksk(a);
  // Registered: the loop stops.
  size_t after = RegistrationRequestsPublished();
  RunFor(300'000, 1000);
  EXPECT_EQ(RegistrationRequestsPublished(), after);
}

// `kgr-node register` sent to a daemon that keeps registering ends with a
// clear result within its own deadline.
TEST_F(RegistrationFaultsTest, RegisterCommandEndsClearlyWhileTheLoopRuns) {
  KedNode& a = AddNode();
  ks_transport_->SimulateDisconnect();
  a.client->KeepRegistering();
  RunFor(30'000);
  uint64_t start = clock_.NowMonotonicMillis();
  EXPECT_EQ(Register(a, 3000).code(), StatusCode::kDeadlineExceeded);
  EXPECT_LE(clock_.NowMonotonicMillis() - start, 3'500u);
  RunFor(40'000);  // the loop is now between two attempts
  ks_transport_->SimulateReconnect();
  start = clock_.NowMonotonicMillis();
  Status st = Register(a, 5000);
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_LE(clock_.NowMonotonicMillis() - start, 2'000u);
  ExpectSameNksk(a);
}

// The repeated answer is only for a node that has not used its NKSK yet: a
// frame under the NKSK proves the node got it, and from then on (also
// after a KS restart) the NTAG is spent, even with the right TOPIC2.
TEST_F(RegistrationFaultsTest, RepeatedAnswerEndsWhenTheNodeFirstUsesItsNksk) {
  auto [a, b] = Pair();
  // Before a's first use, the answer can be repeated to whoever proves the
  // NTAG and TOPIC2: the same keys, never new ones.
  SymmetricKeys got;
  ASSERT_TRUE(RegisterThief(*a, &got).ok());
  EXPECT_TRUE(
      got.RawEncKeyBytes().Equals(nodes_->Get(a->n_id)->nksk.RawEncKeyBytes()));
  ASSERT_TRUE(RequestKey(*a, *b).ok());  // a uses its NKSK
  uint64_t dropped = ks_->stats().dropped_frames;
  EXPECT_EQ(RegisterThief(*a, &got).code(), StatusCode::kDeadlineExceeded);
  EXPECT_GT(ks_->stats().dropped_frames, dropped);
  RunFor(1100);  // the KS persists it with the replay counters
  RestartKs();
  EXPECT_EQ(RegisterThief(*a, &got).code(), StatusCode::kDeadlineExceeded);
  // b only answered a notification: that is a use as well.
  EXPECT_EQ(RegisterThief(*b, &got).code(), StatusCode::kDeadlineExceeded);
  ExpectPairWorks(*a, *b);
}

}  // namespace
}  // namespace kgr::testing
