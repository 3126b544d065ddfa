// A renewal that fails or is abandoned changes nothing (issue 19, failure
// 2): the current key of a pair stays in use until its successor is
// confirmed on both sides, and two nodes that end on different keys
// converge without an operator.
#include <gtest/gtest.h>

#include "node/session_fixture.h"

namespace kgr {
namespace {

using testing::KedNode;
using testing::SessionKeyTest;

using RenewalFaultsTest = SessionKeyTest;

void ExpectSameKey(const SesKey& x, const SesKey& y) {
  EXPECT_EQ(x.key_version, y.key_version);
  EXPECT_TRUE(x.nnsk.RawEncKeyBytes().Equals(y.nnsk.RawEncKeyBytes()));
  EXPECT_TRUE(x.nnsk.RawMacKeyBytes().Equals(y.nnsk.RawMacKeyBytes()));
  EXPECT_EQ(x.topic3, y.topic3);
  EXPECT_EQ(x.topic4, y.topic4);
}

// The peer is away for 3 s while the requester renews: the renewal fails,
// the requester keeps its key, the peer installs the late notification when
// it is back, and data keeps flowing both ways under the old key. The next
// renewal succeeds and both end on it.
TEST_F(RenewalFaultsTest, FailedRenewalLeavesTheWorkingPairAlone) {
  auto [a, b] = Pair();
  ASSERT_TRUE(RequestKey(*a, *b).ok());
  auto before = a->ses->Get(b->n_id);
  ASSERT_TRUE(before.ok());
  b->transport->SimulateDisconnect();
  Status st = RequestKey(*a, *b, 2000);
  EXPECT_EQ(st.code(), StatusCode::kDeadlineExceeded) << st.ToString();
  auto after = a->ses->Get(b->n_id);
  ASSERT_TRUE(after.ok());
  ExpectSameKey(*after, *before);
  b->transport->SimulateReconnect();  // the held notification arrives now
  RunUntil([&] { return broker_.queued() == 0; }, 50);
  ExpectPairWorks(*a, *b);
  EXPECT_EQ(a->ses->Get(b->n_id)->key_version, before->key_version);
  ASSERT_TRUE(RequestKey(*a, *b).ok());
  ExpectPairWorks(*a, *b);
  EXPECT_GT(a->ses->Get(b->n_id)->key_version, before->key_version);
}

// The requester dies right after it received its new key (step 3): its
// renewal is abandoned. The peer installs the key later; the pair keeps
// working under the old key, and a new renewal moves both.
TEST_F(RenewalFaultsTest, AbandonedRenewalLeavesTheWorkingPairAlone) {
  for (bool power_loss : {false, true}) {
    SCOPED_TRACE(power_loss ? "power loss" : "process kill");
    auto [a, b] = Pair();
    ASSERT_TRUE(RequestKey(*a, *b).ok());
    auto before = a->ses->Get(b->n_id);
    b->transport->SimulateDisconnect();
    std::optional<Status> r;
    a->client->RequestKey(b->n_id, true, [&](Status s) { r = s; });
    broker_.Pump();  // request, key to a (step 3); b's notification held
    RestartNode(*a, /*lose_queued=*/false, power_loss);
    b->transport->SimulateReconnect();
    RunUntil([&] { return broker_.queued() == 0; }, 50);
    ExpectSameKey(*a->ses->Get(b->n_id), *before);
    ExpectPairWorks(*a, *b);
    ASSERT_TRUE(RequestKey(*b, *a).ok());
    ExpectPairWorks(*a, *b);
    EXPECT_GT(a->ses->Get(b->n_id)->key_version, before->key_version);
  }
}

// The peer keeps sending under the key in use until the requester has shown
// (by a frame under the new key) that it completed the renewal; the
// requester keeps accepting the old key until then, even across a restart.
TEST_F(RenewalFaultsTest, TheOldKeyStaysUsableUntilTheNewOneIsShown) {
  auto [a, b] = Pair();
  ASSERT_TRUE(RequestKey(*a, *b).ok());
  auto v1 = b->ses->Get(a->n_id);
  ASSERT_TRUE(RequestKey(*a, *b).ok());
  auto kb = b->ses->Get(a->n_id);
  ExpectSameKey(*kb, *v1);  // b still sends under v1
  RestartNode(*a);
  clock_.AdvanceMillis(node_options_.previous_key_grace_ms + 1000);
  auto r = Send(*b, *a, "under v1");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  // a answered under the new key: b uses it from now on.
  EXPECT_EQ(b->ses->Get(a->n_id)->key_version, v1->key_version + 1);
  ExpectPairWorks(*a, *b);
}

}  // namespace
}  // namespace kgr
