// The KGR procedures end to end on the in-memory fakes: one KS, nodes, a
// FakeBroker delivering in order when pumped, FakeTpm, FakeFileSystem and a
// FakeClock. Every refusal of the seed is exercised.
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>

#include "kgr/counter_file.h"
#include "kgr/key_server.h"
#include "kgr/node_client.h"
#include "kgr/store.h"
#include "testing/fake_clock.h"
#include "testing/fake_filesystem.h"
#include "testing/fake_tpm.h"
#include "testing/fake_transport.h"

namespace kgr {
namespace {

using testing::FakeBroker;
using testing::FakeClock;
using testing::FakeFileSystem;
using testing::FakeTpm;
using testing::FakeTransport;

struct Node {
  FakeFileSystem fs;  // each party has its own machine
  FakeTpm tpm;
  std::unique_ptr<FakeTransport> transport;
  std::unique_ptr<SesKeysStore> ses;
  std::unique_ptr<NodeClient> client;
  uint32_t n_id = 0;
  SecretBytes ntag;
};

class ProceduresTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto own = InitKeyServer(ks_tpm_, "127.0.0.1:8883", "kgr");
    ASSERT_TRUE(own.ok()) << own.status().ToString();
    ks_n_id_ = own->identity.n_id;
    auto kedk = ks_tpm_.KedkPublic();
    ASSERT_TRUE(kedk.ok());
    nodes_ = *NodeDescStore::Open(fs_, "/ks/node_desc", own->nk, ks_n_id_);
    gen_keys_ = *GenKeysStore::Open(fs_, "/ks/gen_keys", own->nk, ks_n_id_);
    ks_transport_ = broker_.NewTransport("ks");
    ks_ = std::make_unique<KeyServer>(std::move(*own), *kedk, *ks_transport_,
                                      *nodes_, *gen_keys_, nullptr, clock_,
                                      KeyServerOptions{});
    ks_transport_->SetHandler(
        [this](const std::string& t, Bytes p) { ks_->HandleMessage(t, p); });
    ASSERT_TRUE(ks_transport_->Connect().ok());
    ASSERT_TRUE(ks_->Start().ok());
  }

  // Authorizes a node at the KS (as the AC would) and inits it.
  Node& AddNode(std::vector<uint32_t> peers = {}) {
    AcAuthorizeAns ans;
    Status st = ks_->AuthorizeNode(AcAuthorizeReq{std::move(peers)}, &ans);
    EXPECT_TRUE(st.ok()) << st.ToString();
    auto n = std::make_unique<Node>();
    n->n_id = ans.n_id;
    n->ntag = ans.ntag.Clone();
    Credentials c;
    c.n_id = ans.n_id;
    c.ntag = std::move(ans.ntag);
    c.broker_address = "127.0.0.1:8883";
    c.ks_n_id = ans.ks_n_id;
    auto own = InitNode(n->tpm, c);
    EXPECT_TRUE(own.ok()) << own.status().ToString();
    n->ses = *SesKeysStore::Open(n->fs, "/ses", own->nk, ans.n_id);
    n->transport = broker_.NewTransport(NodeIdentity(ans.n_id));
    n->client = std::make_unique<NodeClient>(
        std::move(*own), n->tpm, *n->transport, *n->ses, clock_, node_options_);
    Node* raw = n.get();
    n->transport->SetHandler([raw](const std::string& t, Bytes p) {
      raw->client->HandleMessage(t, p);
    });
    EXPECT_TRUE(n->transport->Connect().ok());
    EXPECT_TRUE(n->client->Start().ok());
    raw->client->SetDataHandler([](uint32_t, const SecretBytes& d) {
      std::string reply =
          "ack:" + std::string(d.span().begin(), d.span().end());
      return SecretBytes(AsBytes(reply));
    });
    all_.push_back(std::move(n));
    return *raw;
  }

  // Pumps the broker, advancing time and ticking everyone, until `done`.
  template <typename Pred>
  bool RunUntil(Pred done, int max_rounds = 200) {
    for (int i = 0; i < max_rounds && !done(); ++i) {
      broker_.Pump();
      if (done()) break;
      clock_.AdvanceMillis(100);
      ks_->Tick();
      for (auto& n : all_) n->client->Tick();
    }
    return done();
  }

  Status Register(Node& n) {
    std::optional<Status> result;
    n.client->Register([&](Status s) { result = s; });
    RunUntil([&] { return result.has_value(); });
    return result.value_or(InternalError("no result"));
  }

  Status RequestKey(Node& a, Node& b, bool renew = false) {
    std::optional<Status> result;
    a.client->RequestKey(b.n_id, renew, [&](Status s) { result = s; });
    RunUntil([&] { return result.has_value(); });
    return result.value_or(InternalError("no result"));
  }

  // `n` floods TOPIC1 with `frames` valid-looking frames (its own NKSK,
  // a body the KS drops), handed to the KS directly.
  void FloodTopic1(Node& n, int frames) {
    auto own = LoadOwnData(n.tpm);
    ASSERT_TRUE(own.ok());
    for (int i = 0; i < frames; ++i) {
      FrameHeader h;
      h.sender = n.n_id;
      h.key_version = 1;
      h.counter = clock_.NowUnixMicros() + 10 + i;
      h.request_id = static_cast<uint64_t>(i);
      auto f = SealBody(h, NnskConfAns{0}, own->ks->nksk);
      ks_->HandleMessage(ks_->topic1(), *f);
    }
  }

  StatusOr<std::string> Send(Node& a, Node& b, std::string text) {
    std::optional<StatusOr<SecretBytes>> result;
    a.client->Send(b.n_id, SecretBytes(AsBytes(text)),
                   [&](StatusOr<SecretBytes> r) { result = std::move(r); });
    RunUntil([&] { return result.has_value(); });
    if (!result.has_value()) return InternalError("no result");
    if (!result->ok()) return result->status();
    return std::string((*result)->span().begin(), (*result)->span().end());
  }

  // The KS process dies (SIGKILL: its memory is gone; with `power_loss`
  // also every file write not yet synced) and starts again on the same TPM
  // and files. Messages queued at the broker for it stay queued (persistent
  // session) unless `lose_queued`.
  void RestartKs(bool lose_queued = false, bool power_loss = false) {
    uint64_t floor = ks_->last_counter() + kCounterRestartMargin;
    ks_.reset();
    clock_.AdvanceMillis(1);  // a restart takes time
    gen_keys_.reset();
    nodes_.reset();
    if (power_loss) fs_.Crash();
    if (lose_queued) broker_.DropQueuedFor("ks");
    auto own = LoadOwnData(ks_tpm_);
    ASSERT_TRUE(own.ok());
    auto n = NodeDescStore::Open(fs_, "/ks/node_desc", own->nk, ks_n_id_);
    auto g = GenKeysStore::Open(fs_, "/ks/gen_keys", own->nk, ks_n_id_);
    ASSERT_TRUE(n.ok() && g.ok()) << n.status().ToString();
    nodes_ = std::move(*n);
    gen_keys_ = std::move(*g);
    KeyServerOptions o = ks_options_;
    o.counter_floor = floor;  // what the daemon persisted (LoadCounterFloor)
    ks_ = std::make_unique<KeyServer>(std::move(*own), *ks_tpm_.KedkPublic(),
                                      *ks_transport_, *nodes_, *gen_keys_,
                                      nullptr, clock_, o);
    ASSERT_TRUE(ks_->Start().ok());
  }

  // A node process dies and starts again: its pending requests are gone.
  void RestartNode(Node& n, bool lose_queued = false, bool power_loss = false) {
    NodeClientOptions o;
    o.counter_floor = n.client->last_counter() + kCounterRestartMargin;
    n.client.reset();
    clock_.AdvanceMillis(1);
    n.ses.reset();
    if (power_loss) n.fs.Crash();
    if (lose_queued) broker_.DropQueuedFor(n.transport->name());
    auto own = LoadOwnData(n.tpm);
    ASSERT_TRUE(own.ok());
    auto ses = SesKeysStore::Open(n.fs, "/ses", own->nk, n.n_id);
    ASSERT_TRUE(ses.ok());
    n.ses = std::move(*ses);
    n.client = std::make_unique<NodeClient>(std::move(*own), n.tpm,
                                            *n.transport, *n.ses, clock_, o);
    ASSERT_TRUE(n.client->Start().ok());
    n.client->SetDataHandler(
        [](uint32_t, const SecretBytes& d) { return d.Clone(); });
  }

  // Data flows both ways, and then (the peer of a renewal uses the new key
  // once it saw a frame under it) both nodes hold the same current key for
  // their pair, with matching topics.
  void ExpectPairWorks(Node& a, Node& b) {
    EXPECT_TRUE(Send(a, b, "x").ok());
    EXPECT_TRUE(Send(b, a, "y").ok());
    auto ka = a.ses->Get(b.n_id);
    auto kb = b.ses->Get(a.n_id);
    ASSERT_TRUE(ka.ok() && kb.ok());
    EXPECT_TRUE(ka->nnsk.RawEncKeyBytes().Equals(kb->nnsk.RawEncKeyBytes()));
    EXPECT_TRUE(ka->nnsk.RawMacKeyBytes().Equals(kb->nnsk.RawMacKeyBytes()));
    EXPECT_EQ(ka->key_version, kb->key_version);
    EXPECT_EQ(ka->topic3, kb->topic4);
    EXPECT_EQ(ka->topic4, kb->topic3);
  }

  // Pending keys at the KS (gen_keys also keeps tombstones of served
  // request ids for a while).
  size_t LiveKeys() {
    size_t n = 0;
    gen_keys_->ForEach([&](const GenKey& g) { n += g.tombstone() ? 0 : 1; });
    return n;
  }

  // A device with a copy of `n`'s credentials (and its own TPM, files and
  // TOPIC2) tries to register; returns how that ended.
  Status RegisterClone(const Node& n, FakeTpm& tpm) {
    Credentials c;
    c.n_id = n.n_id;
    c.ntag = n.ntag.Clone();
    c.broker_address = "x:1";
    c.ks_n_id = ks_n_id_;
    auto own = InitNode(tpm, c);
    if (!own.ok()) return own.status();
    FakeFileSystem fs;
    auto ses = SesKeysStore::Open(fs, "/ses", own->nk, n.n_id);
    if (!ses.ok()) return ses.status();
    auto t = broker_.NewTransport("clone");
    NodeClientOptions opt;
    opt.request_timeout_ms = 2000;
    NodeClient clone(std::move(*own), tpm, *t, **ses, clock_, opt);
    t->SetHandler(
        [&](const std::string& tp, Bytes p) { clone.HandleMessage(tp, p); });
    if (Status st = t->Connect(); !st.ok()) return st;
    std::optional<Status> r;
    clone.Register([&](Status s) { r = s; });
    for (int i = 0; i < 100 && !r; ++i) {
      broker_.Pump();
      clock_.AdvanceMillis(100);
      clone.Tick();
    }
    return r.value_or(InternalError("no result"));
  }

  // Two registered nodes allowed to pair, with loaded peer lists.
  std::pair<Node*, Node*> Pair() {
    Node& a = AddNode();
    Node& b = AddNode({a.n_id});
    EXPECT_TRUE(Register(a).ok());
    EXPECT_TRUE(Register(b).ok());
    EXPECT_TRUE(a.client->LoadPeers({b.n_id}).ok());
    EXPECT_TRUE(b.client->LoadPeers({a.n_id}).ok());
    return {&a, &b};
  }

  FakeClock clock_;
  NodeClientOptions node_options_;  // for nodes added from now on
  FakeFileSystem fs_;
  FakeBroker broker_;
  FakeTpm ks_tpm_;
  uint32_t ks_n_id_ = 0;
  std::unique_ptr<NodeDescStore> nodes_;
  std::unique_ptr<GenKeysStore> gen_keys_;
  std::unique_ptr<FakeTransport> ks_transport_;
  std::unique_ptr<KeyServer> ks_;
  KeyServerOptions ks_options_;  // of the KS after RestartKs()
  std::vector<std::unique_ptr<Node>> all_;
};

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
  auto r = Send(*a, *b, "hello bravo!");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(*r, "ack:hello bravo!");
  r = Send(*b, *a, "hi");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(*r, "ack:hi");
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
  RunUntil([&] { return a->ses->Get(b->n_id)->key_version >= 2; }, 50);
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
  RunUntil([&] {
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
