// One request id, at most one key, ever (issue 19, failure 3): a late
// retransmission of an nnsk_key_req is answered from what the KS remembers
// (the same key, while the record lives) or refused as stale, also after a
// KS restart, a power loss and the gen_keys TTL purge. Request ids grow per
// node, so the KS can remember "every id up to here is finished" in a few
// bytes per node (node_desc.request_floor) instead of every id it served.
#include <gtest/gtest.h>

#include "node/session_fixture.h"

namespace kgr {
namespace {

using testing::KedNode;
using testing::PublishedMessage;
using testing::SessionKeyTest;

class RequestIdTest : public SessionKeyTest {
 protected:
  // a's key requests published so far (header fields are in clear).
  std::vector<FrameHeader> KeyRequestsOf(const KedNode& n) {
    std::vector<FrameHeader> out;
    for (const auto& m : broker_.published()) {
      auto h = PeekFrameHeader(m.payload);
      if (h.ok() && h->type == FrameType::kNnskKeyReq && h->sender == n.n_id) {
        out.push_back(*h);
      }
    }
    return out;
  }

  // Starts a renewal a -> b, lets its first frame reach the KS and holds
  // back its first retransmission (returned), then completes the renewal.
  PublishedMessage RenewHoldingBackARetransmission(KedNode& a, KedNode& b) {
    std::optional<Status> r;
    a.client->RequestKey(b.n_id, true, [&](Status s) { r = s; });
    EXPECT_TRUE(broker_.PumpOne());  // the request reaches the KS
    broker_.DropNext(1);
    clock_.AdvanceMillis(node_options_.first_retry_ms * 2);
    a.client->Tick();  // retransmits; the broker holds it back
    PublishedMessage late = broker_.published().back();
    EXPECT_EQ(late.topic, ks_->topic1());
    RunUntil([&] { return r.has_value(); });
    EXPECT_TRUE(r.has_value() && r->ok()) << (r ? r->ToString() : "none");
    return late;
  }
};

// The retransmission arrives after step 7, with the KS as it is, after its
// Tick persisted what it must and dropped what it may, after a restart and
// after a power loss that undoes its unsynced writes.
TEST_F(RequestIdTest, LateRetransmissionNeverGetsASecondKey) {
  auto [a, b] = Pair();
  ASSERT_TRUE(RequestKey(*a, *b).ok());
  for (int mode = 0; mode < 5; ++mode) {
    SCOPED_TRACE("mode " + std::to_string(mode));
    uint64_t issued = ks_->stats().keys_issued;
    PublishedMessage late = RenewHoldingBackARetransmission(*a, *b);
    ExpectPairWorks(*a, *b);
    auto before = a->ses->Get(b->n_id);
    ASSERT_TRUE(before.ok());
    if (mode == 1 || mode == 3) {
      for (int i = 0; i < 5; ++i) {
        clock_.AdvanceMillis(1000);
        ks_->Tick();
      }
    }
    if (mode == 2 || mode == 3) RestartKs();
    if (mode == 4) RestartKs(/*lose_queued=*/false, /*power_loss=*/true);
    ks_->HandleMessage(late.topic, late.payload);
    RunUntil([] { return false; }, 30);
    EXPECT_EQ(ks_->stats().keys_issued, mode >= 2 ? 0u : issued + 1)
        << "the late retransmission was given a new key";
    ExpectPairWorks(*a, *b);
    auto after = a->ses->Get(b->n_id);
    ASSERT_TRUE(after.ok());
    EXPECT_EQ(after->key_version, before->key_version);
    EXPECT_TRUE(
        after->nnsk.RawEncKeyBytes().Equals(before->nnsk.RawEncKeyBytes()));
    ExpectAtMostOneKeyPerRequest();
  }
}

// The peer is away longer than the KS's gen_keys TTL while the requester
// retransmits: the KS purges the unconfirmed key and refuses the request id
// from then on (stale); the requester starts over under a new id at once.
// Every id got at most one key, and both nodes end on the same one.
TEST_F(RequestIdTest, PurgedKeyIsNeverReissuedUnderItsRequestId) {
  ks_options_.gen_key_ttl_ms = 2000;  // shorter than the request's deadline
  RestartKs();
  auto [a, b] = Pair();
  ASSERT_TRUE(RequestKey(*a, *b).ok());
  b->transport->SimulateDisconnect();
  std::optional<Status> r;
  a->client->RequestKey(b->n_id, true, [&](Status s) { r = s; });
  broker_.Pump();
  clock_.AdvanceMillis(ks_options_.gen_key_ttl_ms + 1);
  ks_->Tick();
  EXPECT_EQ(ks_->stats().keys_purged, 1u);
  broker_.DropQueuedFor(NodeIdentity(b->n_id));
  b->transport->SimulateReconnect();
  RunUntil([&] { return r.has_value(); });
  ASSERT_TRUE(r.has_value());
  ASSERT_TRUE(r->ok()) << r->ToString();
  ExpectAtMostOneKeyPerRequest();
  std::set<uint64_t> ids;
  for (const FrameHeader& h : KeyRequestsOf(*a)) ids.insert(h.request_id);
  EXPECT_EQ(ids.size(), 3u) << "first key, purged renewal, its restart";
  ExpectPairWorks(*a, *b);
}

// Request ids grow per node, across restarts and power losses.
TEST_F(RequestIdTest, RequestIdsGrowAcrossRestarts) {
  auto [a, b] = Pair();
  for (int i = 0; i < 6; ++i) {
    ASSERT_TRUE(RequestKey(*a, *b).ok());
    if (i == 2) RestartNode(*a);
    if (i == 4) RestartNode(*a, /*lose_queued=*/false, /*power_loss=*/true);
  }
  std::vector<uint64_t> firsts;
  for (const FrameHeader& h : KeyRequestsOf(*a)) {
    if (firsts.empty() || firsts.back() != h.request_id) {
      firsts.push_back(h.request_id);
    }
  }
  ASSERT_EQ(firsts.size(), 6u);
  for (size_t i = 1; i < firsts.size(); ++i) {
    EXPECT_LT(firsts[i - 1], firsts[i]) << "request " << i;
  }
}

// Two requests of one node reach the KS in the opposite order: the older id
// is below the node's floor by then and refused as stale; the node starts it
// over under a new id at once, and both complete.
TEST_F(RequestIdTest, ReorderedRequestsCostARoundTripNotTheRequest) {
  auto [a, b] = Pair();
  KedNode& c = AddNode({a->n_id});
  ASSERT_TRUE(Register(c).ok());
  ASSERT_TRUE(a->client->LoadPeers({c.n_id}).ok());
  ASSERT_TRUE(c.client->LoadPeers({a->n_id}).ok());
  broker_.DropNext(2);
  std::optional<Status> rb, rc;
  a->client->RequestKey(b->n_id, false, [&](Status s) { rb = s; });
  a->client->RequestKey(c.n_id, false, [&](Status s) { rc = s; });
  auto held = broker_.published();
  ASSERT_GE(held.size(), 2u);
  ks_->HandleMessage(held[held.size() - 1].topic,
                     held[held.size() - 1].payload);
  ks_->HandleMessage(held[held.size() - 2].topic,
                     held[held.size() - 2].payload);
  RunUntil([&] { return rb.has_value() && rc.has_value(); });
  ASSERT_TRUE(rb.has_value() && rc.has_value());
  EXPECT_TRUE(rb->ok()) << rb->ToString();
  EXPECT_TRUE(rc->ok()) << rc->ToString();
  ExpectPairWorks(*a, *b);
  ExpectPairWorks(*a, c);
  ExpectAtMostOneKeyPerRequest();
}

}  // namespace
}  // namespace kgr
