// The KGR procedures end to end on the in-memory fakes: one KS, nodes, a
// FakeBroker delivering in order when pumped, FakeTpm, FakeFileSystem and a
// FakeClock. Every refusal of the seed is exercised.
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>

#include "node/ked_fixture.h"

namespace kgr {
namespace {

using testing::FakeFileSystem;
using testing::FakeTpm;
using Node = testing::KedNode;
using ProceduresTest = testing::KedFixture;

TEST_F(ProceduresTest, RegistrationStoresNkskInNvAndNodeDesc) {
  Node& a = AddNode();
  uint64_t nv_before = a.tpm.counters().nv_writes;
  ASSERT_TRUE(Register(a).ok());
  EXPECT_TRUE(a.client->registered());
  EXPECT_EQ(a.tpm.counters().nv_writes - nv_before, 2u);  // define + write
  auto d = nodes_->Get(a.n_id);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->state, NodeState::kRegistered);
  EXPECT_TRUE(d->nksk.valid());
  auto ks_keys = a.tpm.NvRead(NvSlot::kKsKeys);
  ASSERT_TRUE(ks_keys.ok());
  auto blob = DecodeKsKeys(ks_keys->span());
  ASSERT_TRUE(blob.ok());
  EXPECT_TRUE(blob->nksk.RawEncKeyBytes().Equals(d->nksk.RawEncKeyBytes()));
  EXPECT_EQ(blob->ks_n_id, ks_n_id_);
  // Registering again is a no-op on the node.
  EXPECT_TRUE(Register(a).ok());
  EXPECT_EQ(ks_->stats().registrations, 1u);
}

TEST_F(ProceduresTest, NtagWorksForOneRegistrationOnly) {
  Node& a = AddNode();
  ASSERT_TRUE(Register(a).ok());
  std::optional<Status> used;  // a rotation: a frame under the NKSK
  a.client->RotateNksk([&](Status s) { used = s; });
  ASSERT_TRUE(RunUntil([&] { return used.has_value(); }) && used->ok());
  // A clone with the same credentials and a fresh TPM registers again after
  // the node used its NKSK: the KS ignores it.
  FakeTpm clone_tpm;
  EXPECT_EQ(RegisterClone(a, clone_tpm).code(), StatusCode::kDeadlineExceeded);
  EXPECT_EQ(ks_->stats().registrations, 1u);
  EXPECT_GT(ks_->stats().dropped_frames, 0u);
}

TEST_F(ProceduresTest, ACloneRightAfterRegistrationGetsNothing) {
  Node& a = AddNode();
  ASSERT_TRUE(Register(a).ok());
  // Within the replay window, a device with the same credential file but
  // its own TOPIC2 asks under the same request id: refused.
  FakeTpm clone_tpm;
  EXPECT_EQ(RegisterClone(a, clone_tpm).code(), StatusCode::kDeadlineExceeded);
  EXPECT_FALSE(clone_tpm.HasSlot(NvSlot::kKsKeys));
}

TEST_F(ProceduresTest, WrongNtagAndUnknownNodeAreIgnored) {
  Node& a = AddNode();
  // Corrupt the NTAG in the node's TPM: registration must time out.
  SecretBytes bad = a.ntag.Clone();
  bad.data()[0] ^= 1;
  ASSERT_TRUE(a.tpm.NvWrite(NvSlot::kNtag, bad.span()).ok());
  auto own = LoadOwnData(a.tpm);
  ASSERT_TRUE(own.ok());
  NodeClientOptions opt;
  opt.request_timeout_ms = 2000;
  NodeClient wrong(std::move(*own), a.tpm, *a.transport, *a.ses, clock_, opt);
  a.transport->SetHandler(
      [&](const std::string& t, Bytes p) { wrong.HandleMessage(t, p); });
  std::optional<Status> r;
  wrong.Register([&](Status s) { r = s; });
  for (int i = 0; i < 100 && !r; ++i) {
    broker_.Pump();
    clock_.AdvanceMillis(100);
    wrong.Tick();
  }
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->code(), StatusCode::kDeadlineExceeded);
  EXPECT_EQ(nodes_->Get(a.n_id)->state, NodeState::kAuthorized);
  // Unknown N_ID: a frame from an id the KS never authorized.
  uint64_t dropped = ks_->stats().dropped_frames;
  FrameHeader h;
  h.sender = 0x12345678;
  h.counter = 1;
  auto keys = RegistrationKeys(a.ntag, 0x12345678, FrameType::kNkskKeyReq);
  auto f = SealBody(h, NkskKeyReq{0x12345678, a.ntag.Clone(), {}}, *keys);
  ks_->HandleMessage(RegisterTopic("kgr"), *f);
  EXPECT_EQ(ks_->stats().dropped_frames, dropped + 1);
}

TEST_F(ProceduresTest, SessionKeyAllSevenStepsThenDataBothWays) {
  auto [a, b] = Pair();
  ASSERT_TRUE(RequestKey(*a, *b).ok());
  auto ka = a->ses->Get(b->n_id);
  auto kb = b->ses->Get(a->n_id);
  ASSERT_TRUE(ka.ok() && kb.ok());
  EXPECT_TRUE(ka->nnsk.RawEncKeyBytes().Equals(kb->nnsk.RawEncKeyBytes()));
  EXPECT_TRUE(ka->nnsk.RawMacKeyBytes().Equals(kb->nnsk.RawMacKeyBytes()));
  EXPECT_EQ(ka->topic3, kb->topic4);
  EXPECT_EQ(ka->topic4, kb->topic3);
  EXPECT_NE(ka->ctime_unix_ms, 0u);
  EXPECT_EQ(ka->key_version, 1u);
  // Step 7: the KS forgot the key.
  EXPECT_EQ(LiveKeys(), 0u);
  EXPECT_EQ(ks_->stats().keys_confirmed, 1u);
  // The metrics of an establishment (docs/metrics.md).
  EXPECT_EQ(ks_->stats().establishment_seconds.Take().count(), 1u);
  EXPECT_EQ(ks_->stats().commit_seconds.Take().count(), 1u);
  EXPECT_EQ(a->client->stats().keys_established, 1u);
  EXPECT_EQ(a->client->stats().renewals, 0u);
  EXPECT_EQ(a->client->stats().key_request_seconds.Take().count(), 1u);
  EXPECT_EQ(b->client->stats().keys_received, 1u);
  EXPECT_EQ(b->client->stats().keys_established, 0u);
  auto r = Send(*a, *b, "hello bravo!");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(*r, "ack:hello bravo!");
  r = Send(*b, *a, "hi");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(*r, "ack:hi");
  // Each sent a request and a reply, and accepted the other's two.
  EXPECT_EQ(a->client->stats().data_sent, 2u);
  EXPECT_EQ(a->client->stats().data_received, 2u);
  EXPECT_EQ(b->client->stats().data_sent, 2u);
}

TEST_F(ProceduresTest, NoPerKeyTpmOrNvWork) {
  auto [a, b] = Pair();
  uint64_t ks_cmds = ks_tpm_.counters().tpm_commands;
  uint64_t a_nv = a->tpm.counters().nv_writes;
  uint64_t b_nv = b->tpm.counters().nv_writes;
  ASSERT_TRUE(RequestKey(*a, *b).ok());
  ASSERT_TRUE(RequestKey(*a, *b, true).ok());
  EXPECT_EQ(ks_tpm_.counters().tpm_commands, ks_cmds);
  EXPECT_EQ(a->tpm.counters().nv_writes, a_nv);
  EXPECT_EQ(b->tpm.counters().nv_writes, b_nv);
}

TEST_F(ProceduresTest, RenewalReplacesKeysAndTopicsAndDataKeepsFlowing) {
  auto [a, b] = Pair();
  ASSERT_TRUE(RequestKey(*a, *b).ok());
  auto old = a->ses->Get(b->n_id);
  ASSERT_TRUE(RequestKey(*b, *a, true).ok());  // either side may renew
  // a uses the new key once b sent under it.
  ASSERT_TRUE(Send(*b, *a, "new key").ok());
  auto ka = a->ses->Get(b->n_id);
  auto kb = b->ses->Get(a->n_id);
  EXPECT_EQ(ka->key_version, 2u);
  EXPECT_EQ(kb->key_version, 2u);
  EXPECT_TRUE(ka->nnsk.RawEncKeyBytes().Equals(kb->nnsk.RawEncKeyBytes()));
  EXPECT_FALSE(ka->nnsk.RawEncKeyBytes().Equals(old->nnsk.RawEncKeyBytes()));
  EXPECT_NE(ka->topic3, old->topic3);
  EXPECT_NE(ka->topic4, old->topic4);
  auto r = Send(*a, *b, "after renew");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(LiveKeys(), 0u);
}

TEST_F(ProceduresTest, OldKeyRefusedAfterGracePeriod) {
  auto [a, b] = Pair();
  ASSERT_TRUE(RequestKey(*a, *b).ok());
  auto old = a->ses->Get(b->n_id);
  // A frame under the old key, captured before renewal.
  FrameHeader h;
  h.sender = a->n_id;
  h.key_version = old->key_version;
  h.counter = clock_.NowUnixMicros() + 5;
  auto frame =
      SealBody(h, NodeDataReq{b->n_id, SecretBytes(AsBytes("old"))}, old->nnsk);
  ASSERT_TRUE(RequestKey(*a, *b, true).ok());
  ASSERT_TRUE(Send(*a, *b, "new key").ok());  // b uses it from now on
  clock_.AdvanceMillis(NodeClientOptions{}.previous_key_grace_ms + 1000);
  b->client->Tick();
  broker_.ClearPublished();
  auto kb = b->ses->Get(a->n_id);
  // The old topic is no longer the peer's; deliver on the current one.
  b->client->HandleMessage(TopicName("kgr", NodeIdentity(b->n_id), *kb->topic3),
                           *frame);
  EXPECT_TRUE(broker_.published().empty()) << "old key accepted";
}

TEST_F(ProceduresTest, PairNotAllowedIsRefusedWithAClearError) {
  Node& a = AddNode();
  Node& b = AddNode();  // no pair a-b
  ASSERT_TRUE(Register(a).ok());
  ASSERT_TRUE(Register(b).ok());
  ASSERT_TRUE(a.client->LoadPeers({b.n_id}).ok());  // node-side list alone
  Status st = RequestKey(a, b);
  EXPECT_EQ(st.code(), StatusCode::kPermissionDenied) << st.ToString();
  EXPECT_EQ(LiveKeys(), 0u);
  EXPECT_EQ(
      ks_->stats().refusals[static_cast<size_t>(KsErrorCode::kPairNotAllowed)],
      1u);
  EXPECT_EQ(a.client->stats().key_request_failures, 1u);
  // A peer outside the node's own list is refused locally.
  st = RequestKey(b, a);
  EXPECT_EQ(st.code(), StatusCode::kPermissionDenied);
  // Allowing the pair at the KS (and b's list) makes it work.
  ASSERT_TRUE(ks_->SetPeers(AcPeersReq{a.n_id, 1, {b.n_id}}).ok());
  ASSERT_TRUE(b.client->LoadPeers({a.n_id}).ok());
  EXPECT_TRUE(RequestKey(a, b).ok());
}

TEST_F(ProceduresTest, UnregisteredPeerIsRefused) {
  Node& a = AddNode();
  Node& b = AddNode({a.n_id});
  ASSERT_TRUE(Register(a).ok());
  ASSERT_TRUE(a.client->LoadPeers({b.n_id}).ok());
  Status st = RequestKey(a, b);
  EXPECT_EQ(st.code(), StatusCode::kNotFound) << st.ToString();
}

TEST_F(ProceduresTest, LostAnswerIsRetransmittedAndAnsweredWithTheSameKey) {
  auto [a, b] = Pair();
  broker_.ClearPublished();
  // Drop the request itself once: the node retransmits with the same id.
  broker_.DropNext(1);
  ASSERT_TRUE(RequestKey(*a, *b).ok());
  EXPECT_EQ(ks_->stats().keys_issued, 1u);
  EXPECT_EQ(LiveKeys(), 0u);
}

TEST_F(ProceduresTest, TamperedFramesAreDroppedWithoutStateChange) {
  auto [a, b] = Pair();
  broker_.ClearPublished();
  ASSERT_TRUE(RequestKey(*a, *b).ok());
  auto frames = broker_.published();
  ASSERT_GE(frames.size(), 6u);
  auto before_a = a->ses->Get(b->n_id);
  for (const auto& m : frames) {
    for (size_t i = 0; i < m.payload.size(); i += 7) {
      Bytes bad = m.payload;
      bad[i] ^= 0x10;
      ks_->HandleMessage(m.topic, bad);
      a->client->HandleMessage(m.topic, bad);
      b->client->HandleMessage(m.topic, bad);
    }
    // Replays of the genuine frames are dropped too.
    ks_->HandleMessage(m.topic, m.payload);
    a->client->HandleMessage(m.topic, m.payload);
    b->client->HandleMessage(m.topic, m.payload);
  }
  broker_.Pump();
  auto after_a = a->ses->Get(b->n_id);
  EXPECT_TRUE(
      after_a->nnsk.RawEncKeyBytes().Equals(before_a->nnsk.RawEncKeyBytes()));
  EXPECT_EQ(after_a->key_version, before_a->key_version);
  EXPECT_EQ(LiveKeys(), 0u);
  EXPECT_EQ(ks_->stats().keys_issued, 1u);
}

TEST_F(ProceduresTest, ReplayedNotificationAfterRestartCannotRollBackTheKey) {
  auto [a, b] = Pair();
  broker_.ClearPublished();
  ASSERT_TRUE(RequestKey(*a, *b).ok());
  std::vector<testing::PublishedMessage> first = broker_.published();
  ASSERT_TRUE(RequestKey(*a, *b, true).ok());
  auto current = b->ses->Get(a->n_id);
  // b restarts (its in-memory replay window is gone) and an attacker
  // replays the first notification.
  auto own = LoadOwnData(b->tpm);
  ASSERT_TRUE(own.ok());
  NodeClient restarted(std::move(*own), b->tpm, *b->transport, *b->ses, clock_);
  for (const auto& m : first) {
    if (m.sender == "ks") restarted.HandleMessage(m.topic, m.payload);
  }
  auto after = b->ses->Get(a->n_id);
  EXPECT_EQ(after->key_version, current->key_version);
  EXPECT_TRUE(
      after->nnsk.RawEncKeyBytes().Equals(current->nnsk.RawEncKeyBytes()));
}

TEST_F(ProceduresTest, KsReplayCountersSurviveARestart) {
  auto [a, b] = Pair();
  broker_.ClearPublished();
  ASSERT_TRUE(RequestKey(*a, *b).ok());
  std::vector<testing::PublishedMessage> captured = broker_.published();
  ks_->Tick();  // persists the counters
  // The KS restarts: a new KeyServer on the same files.
  auto own = LoadOwnData(ks_tpm_);
  ASSERT_TRUE(own.ok());
  KeyServer restarted(std::move(*own), *ks_tpm_.KedkPublic(), *ks_transport_,
                      *nodes_, *gen_keys_, nullptr, clock_, KeyServerOptions{});
  for (const auto& m : captured) {
    if (m.sender != "ks") restarted.HandleMessage(m.topic, m.payload);
  }
  EXPECT_EQ(restarted.stats().keys_issued, 0u)
      << "a replayed request was served";
  EXPECT_EQ(LiveKeys(), 0u);
  EXPECT_GT(restarted.stats().dropped_frames, 0u);
}

TEST_F(ProceduresTest, ANodeCannotSpeakForAnother) {
  auto [a, b] = Pair();
  Node& c = AddNode({b->n_id});
  ASSERT_TRUE(Register(c).ok());
  // c claims to be a (header sender = a) asking for a key with b, sealing
  // with its own NKSK (the only one it has): the MAC check under a's NKSK
  // fails and nothing is issued.
  auto c_own = LoadOwnData(c.tpm);
  ASSERT_TRUE(c_own.ok() && c_own->ks.has_value());
  FrameHeader h;
  h.sender = a->n_id;
  h.key_version = 1;
  h.counter = clock_.NowUnixMicros() + 1000;
  h.request_id = 42;
  auto f = SealBody(h, NnskKeyReq{b->n_id, 1, TopicId{}}, c_own->ks->nksk);
  ASSERT_TRUE(f.ok());
  ks_->HandleMessage(ks_->topic1(), *f);
  broker_.Pump();
  EXPECT_EQ(ks_->stats().keys_issued, 0u);
  EXPECT_EQ(LiveKeys(), 0u);
  // With its own identity it may only ask for its own pairs: keys for
  // (c, b) go to c and b, never to a.
  broker_.ClearPublished();
  ASSERT_TRUE(c.client->LoadPeers({b->n_id}).ok());
  ASSERT_TRUE(b->client->LoadPeers({a->n_id, c.n_id}).ok());
  ASSERT_TRUE(RequestKey(c, *b).ok());
  for (const auto& m : broker_.published()) {
    EXPECT_EQ(m.topic.find(NodeIdentity(a->n_id)), std::string::npos)
        << "a frame of the (c, b) key went to a: " << m.topic;
  }
}

TEST_F(ProceduresTest, AFloodingNodeIsRateLimitedAndOthersAreServed) {
  auto [a, b] = Pair();
  Node& c = AddNode();
  ASSERT_TRUE(Register(c).ok());
  uint64_t dropped = ks_->stats().dropped_frames;
  FloodTopic1(c, 5000);
  EXPECT_GT(ks_->stats().rate_limited, 4000u);
  EXPECT_GT(ks_->stats().dropped_frames, dropped + 4000);
  // Garbage and oversized frames are dropped before any lookup.
  ks_->HandleMessage(ks_->topic1(), Bytes(3, 0));
  ks_->HandleMessage(RegisterTopic("kgr"), Bytes(kMaxFrameToKs + 1, 1));
  const auto& drops = ks_->stats().drops;
  EXPECT_EQ(drops[static_cast<size_t>(DropReason::kRateLimited)],
            ks_->stats().rate_limited);
  EXPECT_EQ(drops[static_cast<size_t>(DropReason::kMalformed)], 1u);
  EXPECT_EQ(drops[static_cast<size_t>(DropReason::kOversized)], 1u);
  uint64_t by_reason = 0;
  for (uint64_t n : drops) by_reason += n;
  EXPECT_EQ(by_reason, ks_->stats().dropped_frames);
  // a and b are served all the same.
  EXPECT_TRUE(RequestKey(*a, *b).ok());
}

// A rate of 0 turns the per-node limit off (kgr-ks --node-frames-per-s 0):
// the same flood is all worked on, and still only dropped as garbage.
TEST_F(ProceduresTest, RateLimitZeroMeansNoLimit) {
  ks_options_.node_frames_per_s = 0;
  RestartKs();
  auto [a, b] = Pair();
  FloodTopic1(*a, 500);
  EXPECT_EQ(ks_->stats().rate_limited, 0u);
  EXPECT_TRUE(RequestKey(*a, *b).ok());
}

TEST_F(ProceduresTest, DiskFullAtTheKsEndsTheRequestWithAClearError) {
  auto [a, b] = Pair();
  fs_.FailNth(FakeFileSystem::Op::kAppend, 1,
              ResourceExhaustedError("disk full"));
  Status st = RequestKey(*a, *b);
  EXPECT_EQ(st.code(), StatusCode::kInternal) << st.ToString();
  EXPECT_EQ(LiveKeys(), 0u);
  // node_desc is intact, and once there is room again keys flow.
  fs_.ClearFaults();
  EXPECT_TRUE(nodes_->Get(a->n_id).ok());
  EXPECT_TRUE(RequestKey(*a, *b).ok());
}

// Seed 4.7 has six packets; the KS handles three (steps 2, 5, 7). The KS
// dies after the k-th delivered packet, for every k, with the broker keeping
// or losing what was queued for it. Each time the request completes (the
// node retransmits with the same request id; the KS answers from gen_keys
// with the same key), both nodes hold the same key, and gen_keys ends empty.
TEST_F(ProceduresTest, ReplayedDataAfterPeerRestartIsDropped) {
  auto [a, b] = Pair();
  ASSERT_TRUE(RequestKey(*a, *b).ok());
  broker_.ClearPublished();
  ASSERT_TRUE(Send(*a, *b, "once").ok());
  testing::PublishedMessage data;
  for (const auto& m : broker_.published()) {
    auto h = PeekFrameHeader(m.payload);
    if (h.ok() && h->type == FrameType::kNodeDataReq) data = m;
  }
  ASSERT_FALSE(data.payload.empty());
  clock_.AdvanceMillis(1500);
  b->client->Tick();  // persists the receive counter
  RestartNode(*b);
  broker_.ClearPublished();
  b->client->HandleMessage(data.topic, data.payload);
  EXPECT_TRUE(broker_.published().empty()) << "replayed data was answered";
  EXPECT_TRUE(Send(*a, *b, "twice").ok());
}

TEST_F(ProceduresTest, RequestsArrivingTogetherShareOneSync) {
  auto [a, b] = Pair();
  Node& c = AddNode();
  Node& d = AddNode({c.n_id});
  ASSERT_TRUE(Register(c).ok() && Register(d).ok());
  ASSERT_TRUE(c.client->LoadPeers({d.n_id}).ok());
  ASSERT_TRUE(d.client->LoadPeers({c.n_id}).ok());
  // Two requests (and a duplicate of the first) reach the KS together.
  std::optional<Status> r1, r2;
  a->client->RequestKey(b->n_id, false, [&](Status s) { r1 = s; });
  c.client->RequestKey(d.n_id, false, [&](Status s) { r2 = s; });
  std::vector<KeyServer::Message> batch;
  for (const auto& m : broker_.published()) {
    if (m.topic == ks_->topic1()) batch.push_back({m.topic, m.payload});
  }
  ASSERT_EQ(batch.size(), 2u);
  batch.push_back(batch[0]);
  broker_.DropQueuedFor("ks");
  int syncs = fs_.Count(FakeFileSystem::Op::kSync);
  ks_->HandleMessages(batch);
  EXPECT_EQ(fs_.Count(FakeFileSystem::Op::kSync) - syncs, 1);
  EXPECT_EQ(ks_->stats().keys_issued, 2u);
  RunUntil([&] { return r1.has_value() && r2.has_value(); });
  ASSERT_TRUE(r1.has_value() && r2.has_value());
  EXPECT_TRUE(r1->ok()) << r1->ToString();
  EXPECT_TRUE(r2->ok()) << r2->ToString();
  EXPECT_EQ(ks_->stats().keys_issued, 2u);
  EXPECT_EQ(LiveKeys(), 0u);
}

TEST_F(ProceduresTest, AcListPagesCoverEveryNodeOnceInOrder) {
  // 20 nodes with 0 to 19 peers each (entries of 9 to 85 bytes).
  std::vector<uint32_t> ids;
  for (int i = 0; i < 20; ++i) {
    AcAuthorizeAns ans;
    std::vector<uint32_t> peers(ids.begin(), ids.end());
    ASSERT_TRUE(ks_->AuthorizeNode(AcAuthorizeReq{peers}, &ans).ok());
    ids.push_back(ans.n_id);
  }
  std::sort(ids.begin(), ids.end());
  auto own = LoadOwnData(ks_tpm_);
  ASSERT_TRUE(own.ok());
  KeyServerOptions o;
  o.ac_list_page_bytes = 100;
  KeyServer ks(std::move(*own), *ks_tpm_.KedkPublic(), *ks_transport_, *nodes_,
               *gen_keys_, nullptr, clock_, o);
  std::vector<uint32_t> listed;
  uint32_t after = 0;
  int pages = 0;
  for (;; ++pages) {
    ASSERT_LT(pages, 100);
    AcListAns page = ks.ListNodes(after);
    Bytes body;
    page.EncodeTo(&body);
    ASSERT_FALSE(page.nodes.empty());
    // Within the budget, or one entry that is larger on its own.
    EXPECT_TRUE(body.size() <= 100 || page.nodes.size() == 1) << body.size();
    for (const auto& e : page.nodes) listed.push_back(e.n_id);
    if (!page.more) break;
    after = page.nodes.back().n_id;
  }
  EXPECT_EQ(listed, ids);
  EXPECT_GT(pages, 5);
  // After the last node: an empty page, nothing more.
  AcListAns end = ks.ListNodes(ids.back());
  EXPECT_TRUE(end.nodes.empty());
  EXPECT_EQ(end.more, 0);
}

}  // namespace
}  // namespace kgr
