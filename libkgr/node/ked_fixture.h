// The one test fixture of a whole KED on the in-memory fakes: one KS and any
// number of nodes, each with its own FakeTpm and FakeFileSystem, a
// FakeBroker delivering in order when pumped and a FakeClock, with kill,
// power loss and restart of each party. The procedure tests
// (procedures_test.cc) and the fault tests use it directly or through
// session_fixture.h and mini_ked_test.h, which add what only their tests
// need.
#ifndef KGR_NODE_KED_FIXTURE_H_
#define KGR_NODE_KED_FIXTURE_H_

#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "kgr/counter_file.h"
#include "kgr/key_server.h"
#include "kgr/node_client.h"
#include "kgr/store.h"
#include "testing/fake_clock.h"
#include "testing/fake_filesystem.h"
#include "testing/fake_tpm.h"
#include "testing/fake_transport.h"

namespace kgr::testing {

struct KedNode {
  FakeFileSystem fs;  // each party has its own machine
  FakeTpm tpm;
  std::unique_ptr<FakeTransport> transport;
  std::unique_ptr<SesKeysStore> ses;
  std::unique_ptr<NodeClient> client;
  uint32_t n_id = 0;
  SecretBytes ntag;       // from its credentials (to clone the device)
  int data_received = 0;  // frames handed to its data handler
};

class KedFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    auto own = InitKeyServer(ks_tpm_, "127.0.0.1:8883", "kgr");
    ASSERT_TRUE(own.ok()) << own.status().ToString();
    ks_n_id_ = own->identity.n_id;
    ks_transport_ = broker_.NewTransport("ks");
    ks_transport_->SetHandler(
        [this](const std::string& t, Bytes p) { ks_->HandleMessage(t, p); });
    ASSERT_TRUE(ks_transport_->Connect().ok());
    OpenKs(std::move(*own), 0);
  }

  void OpenKs(OwnData own, uint64_t counter_floor) {
    auto n = NodeDescStore::Open(fs_, "/ks/node_desc", own.nk, ks_n_id_);
    auto g = GenKeysStore::Open(fs_, "/ks/gen_keys", own.nk, ks_n_id_);
    ASSERT_TRUE(n.ok() && g.ok()) << n.status().ToString();
    nodes_ = std::move(*n);
    gen_keys_ = std::move(*g);
    KeyServerOptions o = ks_options_;
    o.counter_floor = counter_floor;
    ks_ = std::make_unique<KeyServer>(std::move(own), *ks_tpm_.KedkPublic(),
                                      *ks_transport_, *nodes_, *gen_keys_,
                                      nullptr, clock_, o);
    ASSERT_TRUE(ks_->Start().ok());
  }

  // Authorizes a node at the KS (as the AC would) and inits it.
  KedNode& AddNode(std::vector<uint32_t> peers = {}) {
    AcAuthorizeAns ans;
    Status st = ks_->AuthorizeNode(AcAuthorizeReq{std::move(peers)}, &ans);
    EXPECT_TRUE(st.ok()) << st.ToString();
    auto n = std::make_unique<KedNode>();
    n->n_id = ans.n_id;
    n->ntag = ans.ntag.Clone();
    Credentials c;
    c.n_id = ans.n_id;
    c.ntag = std::move(ans.ntag);
    c.broker_address = "127.0.0.1:8883";
    c.ks_n_id = ans.ks_n_id;
    EXPECT_TRUE(InitNode(n->tpm, c).ok());
    n->transport = broker_.NewTransport(NodeIdentity(ans.n_id));
    KedNode* raw = n.get();
    n->transport->SetHandler([raw](const std::string& t, Bytes p) {
      if (raw->client) raw->client->HandleMessage(t, p);
    });
    EXPECT_TRUE(n->transport->Connect().ok());
    all_.push_back(std::move(n));
    OpenNode(*raw, 0);
    return *raw;
  }

  // (Re)creates the node's process state from its TPM and files.
  void OpenNode(KedNode& n, uint64_t counter_floor) {
    auto own = LoadOwnData(n.tpm);
    ASSERT_TRUE(own.ok()) << own.status().ToString();
    auto ses = SesKeysStore::Open(n.fs, "/ses", own->nk, n.n_id);
    ASSERT_TRUE(ses.ok());
    n.ses = std::move(*ses);
    NodeClientOptions o = node_options_;
    o.counter_floor = counter_floor;
    n.client = std::make_unique<NodeClient>(std::move(*own), n.tpm,
                                            *n.transport, *n.ses, clock_, o);
    ASSERT_TRUE(n.client->Start().ok());
    KedNode* raw = &n;
    n.client->SetDataHandler([raw](uint32_t, const SecretBytes& d) {
      ++raw->data_received;
      return SecretBytes(
          AsBytes("ack:" + std::string(d.span().begin(), d.span().end())));
    });
  }

  // Pumps the broker, advancing time by `step_ms` and ticking everyone,
  // until `done`.
  template <typename Pred>
  bool RunUntil(Pred done, int max_rounds = 300, uint64_t step_ms = 100) {
    for (int i = 0; i < max_rounds && !done(); ++i) {
      broker_.Pump();
      if (done()) break;
      clock_.AdvanceMillis(step_ms);
      if (each_round_) each_round_();
      if (ks_) ks_->Tick();
      for (auto& n : all_) {
        if (n->client) n->client->Tick();
      }
    }
    return done();
  }
  // Lets `ms` of simulated time pass.
  void RunFor(uint64_t ms, uint64_t step_ms = 100) {
    RunUntil([] { return false; }, static_cast<int>(ms / step_ms), step_ms);
  }

  Status Register(KedNode& n, uint64_t timeout_ms = 0) {
    std::optional<Status> result;
    n.client->Register([&](Status s) { result = s; }, timeout_ms);
    RunUntil([&] { return result.has_value(); });
    return result.value_or(InternalError("no result"));
  }

  Status RequestKey(KedNode& a, KedNode& b, bool renew = false,
                    uint64_t timeout_ms = 0) {
    std::optional<Status> result;
    a.client->RequestKey(
        b.n_id, renew, [&](Status s) { result = s; }, timeout_ms);
    RunUntil([&] { return result.has_value(); });
    return result.value_or(InternalError("no result"));
  }

  Status Rotate(KedNode& n) {
    std::optional<Status> result;
    n.client->RotateNksk([&](Status s) { result = s; });
    RunUntil([&] { return result.has_value(); });
    return result.value_or(InternalError("no result"));
  }

  StatusOr<std::string> Send(KedNode& a, KedNode& b, std::string text) {
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
    clock_.AdvanceMillis(1);
    gen_keys_.reset();
    nodes_.reset();
    if (power_loss) fs_.Crash();
    if (lose_queued) broker_.DropQueuedFor("ks");
    auto own = LoadOwnData(ks_tpm_);
    ASSERT_TRUE(own.ok());
    OpenKs(std::move(*own), floor);
  }

  // A node process dies (its pending requests are gone; with `power_loss`
  // also its unsynced writes) and starts again.
  void RestartNode(KedNode& n, bool lose_queued = false,
                   bool power_loss = false) {
    uint64_t floor = n.client->last_counter() + kCounterRestartMargin;
    n.client.reset();
    clock_.AdvanceMillis(1);
    n.ses.reset();
    if (power_loss) n.fs.Crash();
    if (lose_queued) broker_.DropQueuedFor(n.transport->name());
    OpenNode(n, floor);
  }

  // The NKSK blob in the node's NV.
  KsKeysBlob NvKeys(KedNode& n) {
    auto nv = n.tpm.NvRead(NvSlot::kKsKeys);
    EXPECT_TRUE(nv.ok()) << nv.status().ToString();
    if (!nv.ok()) return {};
    auto blob = DecodeKsKeys(nv->span());
    EXPECT_TRUE(blob.ok());
    return blob.ok() ? std::move(*blob) : KsKeysBlob{};
  }

  // `n` floods TOPIC1 with `frames` valid-looking frames (its own NKSK,
  // a body the KS drops), handed to the KS directly.
  void FloodTopic1(KedNode& n, int frames) {
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

  // Pending keys at the KS (gen_keys also keeps tombstones of served
  // request ids for a while).
  size_t LiveKeys() {
    size_t n = 0;
    gen_keys_->ForEach([&](const GenKey& g) { n += g.tombstone() ? 0 : 1; });
    return n;
  }

  // A device with a copy of `n`'s credential file (its own TPM `tpm` and
  // files; with `steal_topic` also `n`'s TOPIC2) tries to register within
  // 2 s. Returns how that ended; on success `nksk` (unless null) receives
  // the NKSK it got.
  Status RegisterClone(KedNode& n, FakeTpm& tpm, bool steal_topic = false,
                       SymmetricKeys* nksk = nullptr) {
    Credentials c;
    c.n_id = n.n_id;
    c.ntag = n.ntag.Clone();
    c.broker_address = "x:1";
    c.ks_n_id = ks_n_id_;
    auto own = InitNode(tpm, c);
    if (!own.ok()) return own.status();
    if (steal_topic) {
      auto victim = LoadOwnData(n.tpm);
      if (!victim.ok()) return victim.status();
      own->identity.own_topic = victim->identity.own_topic;
    }
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
    if (Status st = clone.Start(); !st.ok()) return st;
    std::optional<Status> r;
    clone.Register([&](Status s) { r = s; });
    for (int i = 0; i < 100 && !r; ++i) {
      broker_.Pump();
      clock_.AdvanceMillis(100);
      clone.Tick();
    }
    if (r.has_value() && r->ok() && nksk != nullptr) {
      auto blob = DecodeKsKeys(tpm.NvRead(NvSlot::kKsKeys)->span());
      if (blob.ok()) *nksk = std::move(blob->nksk);
    }
    return r.value_or(InternalError("no result"));
  }

  // Two registered nodes allowed to pair, with loaded peer lists.
  std::pair<KedNode*, KedNode*> Pair() {
    KedNode& a = AddNode();
    KedNode& b = AddNode({a.n_id});
    EXPECT_TRUE(Register(a).ok());
    EXPECT_TRUE(Register(b).ok());
    EXPECT_TRUE(a.client->LoadPeers({b.n_id}).ok());
    EXPECT_TRUE(b.client->LoadPeers({a.n_id}).ok());
    return {&a, &b};
  }

  // Data flows both ways, and then both nodes hold the same current key for
  // their pair, with matching topics (a peer takes a renewed key into use
  // at the first frame under it, docs/protocol.md section 8).
  void ExpectPairWorks(KedNode& a, KedNode& b) {
    auto ab = Send(a, b, "x");
    auto ba = Send(b, a, "y");
    EXPECT_TRUE(ab.ok() && *ab == "ack:x") << ab.status().ToString();
    EXPECT_TRUE(ba.ok() && *ba == "ack:y") << ba.status().ToString();
    auto ka = a.ses->Get(b.n_id);
    auto kb = b.ses->Get(a.n_id);
    ASSERT_TRUE(ka.ok() && kb.ok());
    EXPECT_TRUE(ka->nnsk.RawEncKeyBytes().Equals(kb->nnsk.RawEncKeyBytes()));
    EXPECT_TRUE(ka->nnsk.RawMacKeyBytes().Equals(kb->nnsk.RawMacKeyBytes()));
    EXPECT_EQ(ka->key_version, kb->key_version);
    EXPECT_EQ(ka->topic3, kb->topic4);
    EXPECT_EQ(ka->topic4, kb->topic3);
  }

  FakeClock clock_;
  std::function<void()> each_round_;  // e.g. a flood, as time advances
  NodeClientOptions node_options_;    // for nodes opened from now on
  KeyServerOptions ks_options_;       // for the KS opened from now on
  FakeFileSystem fs_;
  FakeBroker broker_;
  FakeTpm ks_tpm_;
  uint32_t ks_n_id_ = 0;
  std::unique_ptr<NodeDescStore> nodes_;
  std::unique_ptr<GenKeysStore> gen_keys_;
  std::unique_ptr<FakeTransport> ks_transport_;
  std::unique_ptr<KeyServer> ks_;
  std::vector<std::unique_ptr<KedNode>> all_;
};

}  // namespace kgr::testing

#endif  // KGR_NODE_KED_FIXTURE_H_
