// A whole KED on the in-memory fakes for the session key tests
// (renewal_faults_test.cc, request_id_test.cc): one KS, nodes with their own
// FakeTpm and FakeFileSystem, a FakeBroker delivering in order when pumped
// and a FakeClock. Crash helpers model SIGKILL and power loss.
#ifndef KGR_NODE_SESSION_FIXTURE_H_
#define KGR_NODE_SESSION_FIXTURE_H_

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <optional>
#include <set>
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
  FakeFileSystem fs;
  FakeTpm tpm;
  std::unique_ptr<FakeTransport> transport;
  std::unique_ptr<SesKeysStore> ses;
  std::unique_ptr<NodeClient> client;
  uint32_t n_id = 0;
};

class SessionKeyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto own = InitKeyServer(ks_tpm_, "127.0.0.1:8883", "kgr");
    ASSERT_TRUE(own.ok()) << own.status().ToString();
    ks_n_id_ = own->identity.n_id;
    ks_transport_ = broker_.NewTransport("ks");
    ks_transport_->SetHandler(
        [this](const std::string& t, Bytes p) { ks_->HandleMessage(t, p); });
    ASSERT_TRUE(ks_transport_->Connect().ok());
    StartKs(std::move(*own));
  }

  void StartKs(OwnData own) {
    auto n = NodeDescStore::Open(fs_, "/ks/node_desc", own.nk, ks_n_id_);
    auto g = GenKeysStore::Open(fs_, "/ks/gen_keys", own.nk, ks_n_id_);
    ASSERT_TRUE(n.ok() && g.ok()) << n.status().ToString();
    nodes_ = std::move(*n);
    gen_keys_ = std::move(*g);
    ks_ = std::make_unique<KeyServer>(std::move(own), *ks_tpm_.KedkPublic(),
                                      *ks_transport_, *nodes_, *gen_keys_,
                                      nullptr, clock_, ks_options_);
    ASSERT_TRUE(ks_->Start().ok());
  }

  // SIGKILL of the KS (with `power_loss`, unsynced file data is lost too);
  // it starts again on the same TPM and files.
  void RestartKs(bool power_loss = false) {
    ks_options_.counter_floor = ks_->last_counter() + kCounterRestartMargin;
    ks_.reset();
    gen_keys_.reset();
    nodes_.reset();
    clock_.AdvanceMillis(1);
    if (power_loss) fs_.Crash();
    auto own = LoadOwnData(ks_tpm_);
    ASSERT_TRUE(own.ok());
    StartKs(std::move(*own));
  }

  void StartNode(KedNode& n, OwnData own, uint64_t counter_floor) {
    auto ses = SesKeysStore::Open(n.fs, "/ses", own.nk, n.n_id);
    ASSERT_TRUE(ses.ok()) << ses.status().ToString();
    n.ses = std::move(*ses);
    NodeClientOptions o = node_options_;
    o.counter_floor = counter_floor;
    n.client = std::make_unique<NodeClient>(std::move(own), n.tpm, *n.transport,
                                            *n.ses, clock_, o);
    ASSERT_TRUE(n.client->Start().ok());
    n.client->SetDataHandler([](uint32_t, const SecretBytes& d) {
      std::string reply =
          "ack:" + std::string(d.span().begin(), d.span().end());
      return SecretBytes(AsBytes(reply));
    });
  }

  KedNode& AddNode(std::vector<uint32_t> peers = {}) {
    AcAuthorizeAns ans;
    Status st = ks_->AuthorizeNode(AcAuthorizeReq{std::move(peers)}, &ans);
    EXPECT_TRUE(st.ok()) << st.ToString();
    auto n = std::make_unique<KedNode>();
    n->n_id = ans.n_id;
    Credentials c;
    c.n_id = ans.n_id;
    c.ntag = std::move(ans.ntag);
    c.broker_address = "127.0.0.1:8883";
    c.ks_n_id = ans.ks_n_id;
    auto own = InitNode(n->tpm, c);
    EXPECT_TRUE(own.ok()) << own.status().ToString();
    n->transport = broker_.NewTransport(NodeIdentity(ans.n_id));
    KedNode* raw = n.get();
    n->transport->SetHandler([raw](const std::string& t, Bytes p) {
      raw->client->HandleMessage(t, p);
    });
    EXPECT_TRUE(n->transport->Connect().ok());
    StartNode(*raw, std::move(*own), 0);
    all_.push_back(std::move(n));
    return *raw;
  }

  // A node process dies (its memory is gone; with `power_loss` also its
  // unsynced writes) and starts again.
  void RestartNode(KedNode& n, bool power_loss = false) {
    uint64_t floor = n.client->last_counter() + kCounterRestartMargin;
    n.client.reset();
    n.ses.reset();
    clock_.AdvanceMillis(1);
    if (power_loss) n.fs.Crash();
    auto own = LoadOwnData(n.tpm);
    ASSERT_TRUE(own.ok());
    StartNode(n, std::move(*own), floor);
  }

  // Pumps the broker, advancing time by 100 ms and ticking everyone, until
  // `done`.
  template <typename Pred>
  bool RunUntil(Pred done, int max_rounds = 300) {
    for (int i = 0; i < max_rounds && !done(); ++i) {
      broker_.Pump();
      if (done()) break;
      clock_.AdvanceMillis(100);
      ks_->Tick();
      for (auto& n : all_) n->client->Tick();
    }
    return done();
  }

  Status Register(KedNode& n) {
    std::optional<Status> result;
    n.client->Register([&](Status s) { result = s; });
    RunUntil([&] { return result.has_value(); });
    return result.value_or(InternalError("no result"));
  }

  Status RequestKey(KedNode& a, KedNode& b, uint64_t timeout_ms = 0) {
    std::optional<Status> result;
    a.client->RequestKey(
        b.n_id, true, [&](Status s) { result = s; }, timeout_ms);
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

  // Two registered nodes allowed to pair, with their peer lists loaded.
  std::pair<KedNode*, KedNode*> Pair() {
    KedNode& a = AddNode();
    KedNode& b = AddNode({a.n_id});
    EXPECT_TRUE(Register(a).ok());
    EXPECT_TRUE(Register(b).ok());
    EXPECT_TRUE(a.client->LoadPeers({b.n_id}).ok());
    EXPECT_TRUE(b.client->LoadPeers({a.n_id}).ok());
    return {&a, &b};
  }

  // Data flows both ways, then both nodes send under one common key.
  void ExpectConverged(KedNode& a, KedNode& b) {
    auto r = Send(a, b, "ping");
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    r = Send(b, a, "pong");
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    auto ka = a.ses->Get(b.n_id);
    auto kb = b.ses->Get(a.n_id);
    ASSERT_TRUE(ka.ok() && kb.ok());
    EXPECT_EQ(ka->key_version, kb->key_version);
    EXPECT_TRUE(ka->nnsk.RawEncKeyBytes().Equals(kb->nnsk.RawEncKeyBytes()));
    EXPECT_TRUE(ka->nnsk.RawMacKeyBytes().Equals(kb->nnsk.RawMacKeyBytes()));
    EXPECT_EQ(ka->topic3, kb->topic4);
    EXPECT_EQ(ka->topic4, kb->topic3);
  }

  // Every key the KS sent in an nnsk_key_ans or nnsk_not_req so far, per
  // request id (the frames are opened with the receivers' NKSKs).
  std::map<uint64_t, std::set<std::string>> KeysPerRequest() {
    std::map<uint64_t, std::set<std::string>> keys;
    for (const auto& m : broker_.published()) {
      if (m.sender != "ks") continue;
      auto h = PeekFrameHeader(m.payload);
      if (!h.ok() || (h->type != FrameType::kNnskKeyAns &&
                      h->type != FrameType::kNnskNotReq)) {
        continue;
      }
      for (auto& n : all_) {
        if (m.topic.find(NodeIdentity(n->n_id)) == std::string::npos) continue;
        auto own = LoadOwnData(n->tpm);
        if (!own.ok() || !own->ks.has_value()) continue;
        FrameHeader opened;
        auto plain = OpenFrame(m.payload, own->ks->nksk, &opened);
        if (!plain.ok()) continue;
        const SecretBytes* enc = nullptr;
        std::optional<NnskKeyAns> ans;
        std::optional<NnskNotReq> not_req;
        if (h->type == FrameType::kNnskKeyAns) {
          if (auto x = NnskKeyAns::Parse(plain->span()); x.ok()) {
            ans = std::move(*x);
            enc = &ans->nnsk.RawEncKeyBytes();
          }
        } else if (auto x = NnskNotReq::Parse(plain->span()); x.ok()) {
          not_req = std::move(*x);
          enc = &not_req->nnsk.RawEncKeyBytes();
        }
        if (enc != nullptr) {
          keys[h->request_id].insert(
              std::string(enc->span().begin(), enc->span().end()));
        }
      }
    }
    return keys;
  }

  void ExpectAtMostOneKeyPerRequest() {
    for (const auto& [id, keys] : KeysPerRequest()) {
      EXPECT_LE(keys.size(), 1u)
          << "request " << std::hex << id << " got " << keys.size() << " keys";
    }
  }

  FakeClock clock_;
  NodeClientOptions node_options_;
  KeyServerOptions ks_options_;
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

#endif  // KGR_NODE_SESSION_FIXTURE_H_
