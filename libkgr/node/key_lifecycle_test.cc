// The procedures of ProceduresTest (procedures_test.cc) that end or replace
// keys: the usage policy, revocation and withdrawal, NKSK rotation, and the
// KS's caches and purges.
#include <gtest/gtest.h>

#include "node/ked_fixture.h"

namespace kgr {
namespace {

using testing::FakeTpm;
using Node = testing::KedNode;
using ProceduresTest = testing::KedFixture;

TEST_F(ProceduresTest, PolicyRenewsByFramesAndDataKeepsFlowing) {
  node_options_.policy.max_frames = 10;
  auto [a, b] = Pair();
  ASSERT_TRUE(RequestKey(*a, *b).ok());
  for (int i = 0; i < 60; ++i) {
    auto r = Send(*a, *b, "frame " + std::to_string(i));
    ASSERT_TRUE(r.ok()) << "frame " << i << ": " << r.status().ToString();
    a->client->Tick();
    b->client->Tick();
  }
  // A peer takes a renewed key into use at its first frame (a renewal that
  // completed with the last send is still "next" there): one exchange both
  // ways, then both hold the same key (a few tries: the policy may renew
  // again meanwhile).
  StatusOr<SesKey> ka = NotFoundError(""), kb = NotFoundError("");
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(Send(*b, *a, "last").ok());
    ASSERT_TRUE(Send(*a, *b, "last").ok());
    ka = a->ses->Get(b->n_id);
    kb = b->ses->Get(a->n_id);
    if (ka->key_version == kb->key_version) break;
  }
  EXPECT_GE(ka->key_version, 5u) << "renewed by itself every ~8 frames";
  EXPECT_EQ(ka->key_version, kb->key_version);
  EXPECT_TRUE(ka->nnsk.RawEncKeyBytes().Equals(kb->nnsk.RawEncKeyBytes()));
  // What the key really sealed (the stored count is reserved ahead).
  for (const PairInfo& p : a->client->Pairs()) EXPECT_LT(p.frames_sent, 10u);
}

TEST_F(ProceduresTest, PolicyCanBeOverriddenPerPair) {
  auto [a, b] = Pair();
  Node& c = AddNode({a->n_id});
  ASSERT_TRUE(Register(c).ok());
  ASSERT_TRUE(a->client->LoadPeers({c.n_id}).ok());
  ASSERT_TRUE(c.client->LoadPeers({a->n_id}).ok());
  ASSERT_TRUE(RequestKey(*a, *b).ok());
  ASSERT_TRUE(RequestKey(*a, c).ok());
  // Restart a with a KED-wide limit of 1000 frames, but 4 for the pair a-c.
  node_options_.policy.max_frames = 1000;
  node_options_.pair_policy[c.n_id].max_frames = 4;
  node_options_.pair_policy[c.n_id].renew_at = 9;  // see the limit bite
  auto own = LoadOwnData(a->tpm);
  NodeClient restarted(std::move(*own), a->tpm, *a->transport, *a->ses, clock_,
                       node_options_);
  a->transport->SetHandler(
      [&](const std::string& t, Bytes p) { restarted.HandleMessage(t, p); });
  ASSERT_TRUE(restarted.Start().ok());
  auto send = [&](Node& to) {
    std::optional<StatusOr<SecretBytes>> r;
    restarted.Send(to.n_id, SecretBytes(AsBytes("x")),
                   [&](StatusOr<SecretBytes> x) { r = std::move(x); });
    RunUntil([&] { return r.has_value(); });
    return r->status();
  };
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(send(c).ok());
  EXPECT_EQ(send(c).code(), StatusCode::kResourceExhausted);
  for (int i = 0; i < 10; ++i) EXPECT_TRUE(send(*b).ok());
}

TEST_F(ProceduresTest, PolicyRenewsByAge) {
  node_options_.policy.max_age_ms = 60'000;
  auto [a, b] = Pair();
  ASSERT_TRUE(RequestKey(*a, *b).ok());
  clock_.AdvanceMillis(30'000);
  RunUntil([] { return false; }, 5);
  EXPECT_EQ(a->ses->Get(b->n_id)->key_version, 1u);
  clock_.AdvanceMillis(25'000);  // past 0.8 ± 0.1 of the limit
  // b uses the new key once it sees a frame under it (the Send below).
  RunUntil([&, a = a, b = b] { return a->ses->Get(b->n_id)->key_version >= 2; },
           50);
  EXPECT_GE(a->ses->Get(b->n_id)->key_version, 2u);
  EXPECT_TRUE(Send(*a, *b, "fresh").ok());
}

TEST_F(ProceduresTest, PolicyHardLimitRefusesFramesBeyondIt) {
  node_options_.policy.max_frames = 3;
  node_options_.policy.renew_at = 5.0;  // never renew: see the limit bite
  node_options_.policy.jitter = 0;
  auto [a, b] = Pair();
  ASSERT_TRUE(RequestKey(*a, *b).ok());
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(Send(*a, *b, "x").ok());
  auto r = Send(*a, *b, "one too many");
  EXPECT_EQ(r.status().code(), StatusCode::kResourceExhausted)
      << r.status().ToString();
  // A renewal restores the budget.
  ASSERT_TRUE(RequestKey(*a, *b, true).ok());
  EXPECT_TRUE(Send(*a, *b, "x").ok());
}

TEST_F(ProceduresTest, RevokedNodeIsCutOffEverywhere) {
  auto [a, b] = Pair();
  ASSERT_TRUE(RequestKey(*a, *b).ok());
  // A key procedure of a is under way when it is revoked.
  b->transport->SimulateDisconnect();
  std::optional<Status> pending;
  a->client->RequestKey(b->n_id, true, [&](Status s) { pending = s; });
  broker_.Pump();
  EXPECT_EQ(LiveKeys(), 1u);
  b->transport->SimulateReconnect();
  int notified = 0;
  ASSERT_TRUE(ks_->RevokeNode(a->n_id, &notified).ok());
  EXPECT_EQ(notified, 1);
  EXPECT_EQ(LiveKeys(), 0u) << "its pending keys are dropped";
  broker_.Pump();
  // b wiped the pair: no keys, and a's data is dropped.
  EXPECT_EQ(b->ses->Get(a->n_id).status().code(), StatusCode::kNotFound);
  auto r = Send(*a, *b, "still there?");
  EXPECT_FALSE(r.ok());
  // The KS refuses everything a sends; it cannot register again either.
  Status st = RequestKey(*a, *b, true);
  EXPECT_FALSE(st.ok());
  EXPECT_EQ(nodes_->Get(a->n_id)->state, NodeState::kRevoked);
  EXPECT_FALSE(nodes_->Get(a->n_id)->nksk.valid());
  EXPECT_TRUE(nodes_->Get(b->n_id)->allowed_peers.empty());
  FakeTpm clone_tpm;
  EXPECT_FALSE(RegisterClone(*a, clone_tpm).ok());
}

TEST_F(ProceduresTest, WithdrawnPairIsWipedOnBothNodesAndRefused) {
  auto [a, b] = Pair();
  ASSERT_TRUE(RequestKey(*a, *b).ok());
  ASSERT_TRUE(ks_->SetPeers(AcPeersReq{a->n_id, 0, {b->n_id}}).ok());
  broker_.Pump();
  EXPECT_EQ(a->ses->Get(b->n_id).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(b->ses->Get(a->n_id).status().code(), StatusCode::kNotFound);
  // Even with the peer back in its own list, the KS refuses the pair.
  ASSERT_TRUE(a->client->LoadPeers({b->n_id}).ok());
  EXPECT_EQ(RequestKey(*a, *b).code(), StatusCode::kPermissionDenied);
}

TEST_F(ProceduresTest, NkskRotationGivesForwardSecrecyWithOneNvWrite) {
  auto [a, b] = Pair();
  auto old_blob = DecodeKsKeys(a->tpm.NvRead(NvSlot::kKsKeys)->span());
  ASSERT_TRUE(old_blob.ok());
  uint64_t nv = a->tpm.counters().nv_writes;
  std::optional<Status> r;
  a->client->RotateNksk([&](Status s) { r = s; });
  RunUntil([&] { return r.has_value(); });
  ASSERT_TRUE(r.has_value() && r->ok()) << (r ? r->ToString() : "none");
  EXPECT_EQ(a->tpm.counters().nv_writes - nv, 1u);
  auto blob = DecodeKsKeys(a->tpm.NvRead(NvSlot::kKsKeys)->span());
  ASSERT_TRUE(blob.ok());
  EXPECT_EQ(blob->version, old_blob->version + 1);
  EXPECT_FALSE(
      blob->nksk.RawEncKeyBytes().Equals(old_blob->nksk.RawEncKeyBytes()));
  EXPECT_FALSE(
      blob->nksk.RawMacKeyBytes().Equals(old_blob->nksk.RawMacKeyBytes()));
  EXPECT_TRUE(nodes_->Get(a->n_id)->prev_nksk.valid());
  // The node uses the new pair: the KS completes the rotation, and nothing
  // the KS sends from now on opens with the old pair.
  broker_.ClearPublished();
  ASSERT_TRUE(RequestKey(*a, *b).ok());
  EXPECT_FALSE(nodes_->Get(a->n_id)->prev_nksk.valid());
  EXPECT_TRUE(nodes_->Get(a->n_id)->nksk.RawEncKeyBytes().Equals(
      blob->nksk.RawEncKeyBytes()));
  int checked = 0;
  for (const auto& m : broker_.published()) {
    if (m.topic.find(NodeIdentity(a->n_id)) == std::string::npos) continue;
    auto h = PeekFrameHeader(m.payload);
    if (!h.ok() || h->sender != ks_n_id_) continue;
    FrameHeader opened;
    EXPECT_EQ(OpenFrame(m.payload, old_blob->nksk, &opened).status().code(),
              StatusCode::kUnauthenticated);
    EXPECT_TRUE(OpenFrame(m.payload, blob->nksk, &opened).ok());
    ++checked;
  }
  EXPECT_GE(checked, 2);
  // A frame sealed with the old pair is refused now.
  FrameHeader h;
  h.sender = a->n_id;
  h.key_version = old_blob->version;
  h.counter = clock_.NowUnixMicros() + 100000;
  h.request_id = 99;
  auto f = SealBody(h, NnskKeyReq{b->n_id, 9, TopicId{}}, old_blob->nksk);
  uint64_t issued = ks_->stats().keys_issued;
  ks_->HandleMessage(ks_->topic1(), *f);
  EXPECT_EQ(ks_->stats().keys_issued, issued);
}

TEST_F(ProceduresTest, KsAsksForRotationAndALostAnswerIsRecovered) {
  auto [a, b] = Pair();
  ASSERT_TRUE(ks_->RequestRotation(b->n_id).ok());
  ASSERT_TRUE(broker_.PumpOne());  // nksk_rot_sig -> b; b sends nksk_rot_req
  ASSERT_TRUE(broker_.PumpOne());  // the KS answers...
  broker_.DropQueuedFor(b->transport->name());  // ...and the answer is lost
  RunUntil([&, b = b] {
    return DecodeKsKeys(b->tpm.NvRead(NvSlot::kKsKeys)->span())->version == 2;
  });
  auto blob = DecodeKsKeys(b->tpm.NvRead(NvSlot::kKsKeys)->span());
  EXPECT_EQ(blob->version, 2u);
  ASSERT_TRUE(RequestKey(*b, *a).ok());
  EXPECT_TRUE(nodes_->Get(b->n_id)->nksk.RawEncKeyBytes().Equals(
      blob->nksk.RawEncKeyBytes()));
  EXPECT_EQ(nodes_->Get(b->n_id)->nksk_version, 2u);
}

// The KS's decoded node_desc cache never disagrees with the store, even
// when every lookup evicts (one entry) or nothing is cached.
TEST_F(ProceduresTest, NodeDescCacheOfAnySizeAgreesWithTheStore) {
  for (size_t entries : {size_t{1}, size_t{0}}) {
    SCOPED_TRACE(entries);
    ks_options_.node_cache_entries = entries;
    RestartKs();
    auto [a, b] = Pair();
    auto [c, d] = Pair();
    ASSERT_TRUE(RequestKey(*a, *b).ok());
    ASSERT_TRUE(RequestKey(*c, *d).ok());
    ASSERT_TRUE(RequestKey(*b, *a, true).ok());
    ASSERT_TRUE(RequestKey(*d, *c, true).ok());
    ASSERT_TRUE(ks_->RequestRotation(c->n_id).ok());
    broker_.Pump();
    ASSERT_TRUE(RequestKey(*c, *d, true).ok());
    int notified = 0;
    ASSERT_TRUE(ks_->RevokeNode(a->n_id, &notified).ok());
    broker_.Pump();
    EXPECT_FALSE(RequestKey(*b, *a, true).ok());
    EXPECT_EQ(nodes_->Get(a->n_id)->state, NodeState::kRevoked);
    ASSERT_TRUE(RequestKey(*d, *c, true).ok());
  }
}

// KeyReissuedAfterPurgeReplacesTheRequestersCopy became
// RequestIdTest.PurgedKeyIsNeverReissuedUnderItsRequestId (one request id,
// at most one key, ever).

TEST_F(ProceduresTest, ExpiredGenKeysArePurged) {
  auto [a, b] = Pair();
  // b is offline: its notification is lost for good.
  b->transport->SimulateDisconnect();
  std::optional<Status> r;
  a->client->RequestKey(b->n_id, false, [&](Status s) { r = s; });
  broker_.Pump();
  EXPECT_EQ(LiveKeys(), 1u);
  for (int i = 0; i < 200 && !r; ++i) {
    clock_.AdvanceMillis(100);
    a->client->Tick();
    broker_.Pump();
  }
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->code(), StatusCode::kDeadlineExceeded);
  clock_.AdvanceMillis(KeyServerOptions{}.gen_key_ttl_ms + 1);
  ks_->Tick();
  EXPECT_EQ(LiveKeys(), 0u);
  EXPECT_EQ(ks_->stats().keys_purged, 1u);
}

}  // namespace
}  // namespace kgr

namespace kgr {
namespace {

// Found by the cluster e2e (and the etcd e2e): a renews twice with no data
// of b under the first renewal's key in between. b moves to that key on
// a's answer to b's data request, but a never sees b use it, so at the
// second renewal a used to keep the key before it as the previous one and
// drop the one b was on: b's next frame was refused ("unexpected topic")
// until b renewed by itself.
TEST_F(ProceduresTest, TwoRenewalsInARowKeepTheKeyThePeerMovedTo) {
  auto [a, b] = Pair();
  ASSERT_TRUE(RequestKey(*a, *b).ok());
  ASSERT_TRUE(RequestKey(*a, *b, true).ok());  // v2
  auto r = Send(*b, *a, "under v1, answered under v2");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(b->ses->Get(a->n_id)->key_version, 2u) << "b moved to v2";
  ASSERT_TRUE(RequestKey(*a, *b, true).ok());  // v3
  r = Send(*b, *a, "under v2");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  r = Send(*a, *b, "under v3");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(b->ses->Get(a->n_id)->key_version, 3u);
}

// The case the old rule was for: a renews twice without sending anything
// under the first renewal's key, so b is still on v1 and a keeps v1.
TEST_F(ProceduresTest, TwoRenewalsInARowWithoutDataKeepTheFirstKey) {
  auto [a, b] = Pair();
  ASSERT_TRUE(RequestKey(*a, *b).ok());
  ASSERT_TRUE(RequestKey(*a, *b, true).ok());  // v2, b still on v1
  ASSERT_TRUE(RequestKey(*a, *b, true).ok());  // v3
  ASSERT_EQ(b->ses->Get(a->n_id)->key_version, 1u);
  auto r = Send(*b, *a, "under v1");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(b->ses->Get(a->n_id)->key_version, 3u);
}

}  // namespace
}  // namespace kgr
