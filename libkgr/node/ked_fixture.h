// Test fixture: one KS and any number of nodes on the in-memory fakes
// (FakeBroker delivering in order when pumped, FakeTpm, FakeFileSystem, a
// FakeClock), with kill/restart of each party. For the fault tests of
// registration and NKSK rotation (registration_faults_test.cc,
// rotation_faults_test.cc).
#ifndef KGR_NODE_KED_FIXTURE_H_
#define KGR_NODE_KED_FIXTURE_H_

#include <gtest/gtest.h>

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
  SecretBytes ntag;
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
    n.client->SetDataHandler([](uint32_t, const SecretBytes& d) {
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

  Status RequestKey(KedNode& a, KedNode& b, bool renew = false) {
    std::optional<Status> result;
    a.client->RequestKey(b.n_id, renew, [&](Status s) { result = s; });
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

  // The KS process dies (SIGKILL) and starts again on the same TPM and
  // files; messages queued for it stay queued unless `lose_queued`.
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

  // A node process dies and starts again: its pending requests are gone.
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
  // their pair (a peer takes a renewed key into use at the first frame
  // under it, docs/protocol.md section 8).
  void ExpectPairWorks(KedNode& a, KedNode& b) {
    auto ab = Send(a, b, "x");
    auto ba = Send(b, a, "y");
    EXPECT_TRUE(ab.ok() && *ab == "ack:x") << ab.status().ToString();
    EXPECT_TRUE(ba.ok() && *ba == "ack:y") << ba.status().ToString();
    auto ka = a.ses->Get(b.n_id);
    auto kb = b.ses->Get(a.n_id);
    ASSERT_TRUE(ka.ok() && kb.ok());
    EXPECT_TRUE(ka->nnsk.RawEncKeyBytes().Equals(kb->nnsk.RawEncKeyBytes()));
    EXPECT_EQ(ka->key_version, kb->key_version);
  }

  FakeClock clock_;
  NodeClientOptions node_options_;  // for nodes opened from now on
  KeyServerOptions ks_options_;     // for the KS opened from now on
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
