// The procedures of ProceduresTest (procedures_test.cc) with the KS or a
// node killed, or power lost, after every step.
#include <gtest/gtest.h>

#include "node/ked_fixture.h"

namespace kgr {
namespace {

using Node = testing::KedNode;
using ProceduresTest = testing::KedFixture;

TEST_F(ProceduresTest, KsCrashAfterEveryStepOfSessionKeyGeneration) {
  auto [a, b] = Pair();
  for (int mode = 0; mode < 4; ++mode) {
    bool lose = mode & 1, power = mode & 2;
    for (int k = 0; k <= 6; ++k) {
      SCOPED_TRACE("crash after packet " + std::to_string(k) +
                   (lose ? ", queued packets lost" : "") +
                   (power ? ", power loss" : ""));
      std::optional<Status> result;
      a->client->RequestKey(b->n_id, true, [&](Status s) { result = s; });
      for (int i = 0; i < k; ++i) ASSERT_TRUE(broker_.PumpOne());
      RestartKs(lose, power);
      RunUntil([&] { return result.has_value(); });
      ASSERT_TRUE(result.has_value());
      ASSERT_TRUE(result->ok()) << result->ToString();
      ExpectPairWorks(*a, *b);
      clock_.AdvanceMillis(KeyServerOptions{}.gen_key_ttl_ms + 1);
      ks_->Tick();
      EXPECT_EQ(LiveKeys(), 0u);
    }
  }
}

// Either node dies after every packet. The requester's request dies with
// it (its caller sees the process end); a new request then succeeds. The
// peer comes back and completes the one under way. Nothing is left in
// gen_keys after the purge, and node_desc and ses_keys stay consistent.
TEST_F(ProceduresTest, NodeCrashAfterEveryStepOfSessionKeyGeneration) {
  auto [a, b] = Pair();
  for (int mode = 0; mode < 4; ++mode) {
    int who = mode & 1;
    bool power = mode & 2;
    for (int k = 0; k <= 6; ++k) {
      SCOPED_TRACE(std::string(who ? "peer" : "requester") +
                   " crashes after packet " + std::to_string(k) +
                   (power ? ", power loss" : ""));
      std::optional<Status> result;
      a->client->RequestKey(b->n_id, true, [&](Status s) { result = s; });
      for (int i = 0; i < k; ++i) ASSERT_TRUE(broker_.PumpOne());
      if (who == 0) {
        RestartNode(*a, false, power);
        RunUntil([&] { return broker_.queued() == 0; }, 50);
        result.reset();
        a->client->RequestKey(b->n_id, true, [&](Status s) { result = s; });
      } else {
        RestartNode(*b, false, power);
      }
      RunUntil([&] { return result.has_value(); });
      ASSERT_TRUE(result.has_value());
      ASSERT_TRUE(result->ok()) << result->ToString();
      ExpectPairWorks(*a, *b);
      clock_.AdvanceMillis(KeyServerOptions{}.gen_key_ttl_ms + 1);
      ks_->Tick();
      EXPECT_EQ(LiveKeys(), 0u);
      EXPECT_TRUE(nodes_->Get(a->n_id).ok());
      EXPECT_TRUE(nodes_->Get(b->n_id).ok());
    }
  }
}

// Registration with a crash of the KS or of the node after each packet
// (process kill and power loss): the node asks again under the same request
// id (fixed per NTAG) and the KS answers from node_desc with the same keys,
// until the node has used them (NodeDesc::nksk_unused). The keys in the node's
// NV always match node_desc.
TEST_F(ProceduresTest, CrashDuringRegistrationAtEveryStep) {
  for (int mode = 0; mode < 4; ++mode) {
    bool node_crashes = mode & 1, power = mode & 2;
    for (int k = 0; k <= 2; ++k) {
      SCOPED_TRACE(std::string(node_crashes ? "node" : "KS") +
                   " crashes after packet " + std::to_string(k) +
                   (power ? ", power loss" : ""));
      Node& a = AddNode();
      std::optional<Status> result;
      a.client->Register([&](Status s) { result = s; });
      for (int i = 0; i < k; ++i) ASSERT_TRUE(broker_.PumpOne());
      if (node_crashes) {
        RestartNode(a, false, power);
        result.reset();
        a.client->Register([&](Status s) { result = s; });
      } else {
        RestartKs(false, power);
      }
      RunUntil([&] { return result.has_value(); });
      ASSERT_TRUE(result.has_value());
      ASSERT_TRUE(result->ok()) << result->ToString();
      auto d = nodes_->Get(a.n_id);
      ASSERT_TRUE(d.ok()) << d.status().ToString();
      EXPECT_EQ(d->state, NodeState::kRegistered);
      auto blob = DecodeKsKeys(a.tpm.NvRead(NvSlot::kKsKeys)->span());
      ASSERT_TRUE(blob.ok());
      EXPECT_TRUE(blob->nksk.RawEncKeyBytes().Equals(d->nksk.RawEncKeyBytes()));
      EXPECT_TRUE(blob->nksk.RawMacKeyBytes().Equals(d->nksk.RawMacKeyBytes()));
    }
  }
}

}  // namespace
}  // namespace kgr
