// A small KED on the fakes for the tests of counters across restarts and of
// the KS's admission: one KS, nodes with their own FakeFileSystem and
// FakeTpm, a FakeBroker pumped by the test, a FakeClock.
#ifndef KGR_NODE_MINI_KED_TEST_H_
#define KGR_NODE_MINI_KED_TEST_H_

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

struct MiniNode {
  FakeFileSystem fs;
  FakeTpm tpm;
  std::unique_ptr<FakeTransport> transport;
  std::unique_ptr<SesKeysStore> ses;
  std::unique_ptr<NodeClient> client;
  uint32_t n_id = 0;
  int data_received = 0;  // frames handed to the data handler
};

class MiniKed : public ::testing::Test {
 protected:
  void SetUp() override {
    auto own = InitKeyServer(ks_tpm_, "127.0.0.1:8883", "kgr");
    ASSERT_TRUE(own.ok()) << own.status().ToString();
    ks_n_id_ = own->identity.n_id;
    nodes_ = *NodeDescStore::Open(fs_, "/ks/node_desc", own->nk, ks_n_id_);
    gen_keys_ = *GenKeysStore::Open(fs_, "/ks/gen_keys", own->nk, ks_n_id_);
    ks_transport_ = broker_.NewTransport("ks");
    ks_ = std::make_unique<KeyServer>(std::move(*own), *ks_tpm_.KedkPublic(),
                                      *ks_transport_, *nodes_, *gen_keys_,
                                      nullptr, clock_, ks_options_);
    ks_transport_->SetHandler(
        [this](const std::string& t, Bytes p) { ks_->HandleMessage(t, p); });
    ASSERT_TRUE(ks_transport_->Connect().ok());
    ASSERT_TRUE(ks_->Start().ok());
  }

  // Authorizes a node at the KS (as the AC would), inits and starts it.
  MiniNode& AddNode(std::vector<uint32_t> peers = {}) {
    AcAuthorizeAns ans;
    EXPECT_TRUE(
        ks_->AuthorizeNode(AcAuthorizeReq{std::move(peers)}, &ans).ok());
    auto n = std::make_unique<MiniNode>();
    n->n_id = ans.n_id;
    Credentials c;
    c.n_id = ans.n_id;
    c.ntag = std::move(ans.ntag);
    c.broker_address = "127.0.0.1:8883";
    c.ks_n_id = ans.ks_n_id;
    EXPECT_TRUE(InitNode(n->tpm, c).ok());
    n->transport = broker_.NewTransport(NodeIdentity(ans.n_id));
    EXPECT_TRUE(n->transport->Connect().ok());
    all_.push_back(std::move(n));
    StartNode(*all_.back(), node_options_);
    return *all_.back();
  }

  // Opens the node's files and starts its client (again).
  void StartNode(MiniNode& n, const NodeClientOptions& o) {
    auto own = LoadOwnData(n.tpm);
    ASSERT_TRUE(own.ok());
    auto ses = SesKeysStore::Open(n.fs, "/ses", own->nk, n.n_id);
    ASSERT_TRUE(ses.ok()) << ses.status().ToString();
    n.ses = std::move(*ses);
    n.client = std::make_unique<NodeClient>(std::move(*own), n.tpm,
                                            *n.transport, *n.ses, clock_, o);
    MiniNode* raw = &n;
    n.transport->SetHandler([raw](const std::string& t, Bytes p) {
      if (raw->client) raw->client->HandleMessage(t, p);
    });
    n.client->SetDataHandler([raw](uint32_t, const SecretBytes& d) {
      ++raw->data_received;
      return d.Clone();
    });
    ASSERT_TRUE(n.client->Start().ok());
  }

  enum class Stop { kClean, kKill, kPowerLoss };
  // The node's process stops and starts again. kClean: SIGTERM (the
  // daemon's shutdown path: Shutdown(), then the files are closed). kKill:
  // what the process held in memory is lost, what it wrote to its files is
  // not. kPowerLoss: every write not synced is lost too.
  void RestartNode(MiniNode& n, Stop how) {
    NodeClientOptions o = node_options_;
    o.counter_floor = n.client->last_counter() + kCounterRestartMargin;
    if (how == Stop::kClean) {
      EXPECT_TRUE(n.client->Shutdown().ok());
    }
    // A kill loses the unsynced writes the store still held in memory; a
    // clean close writes them to the file without a sync: a crash that
    // keeps only synced data models both.
    n.client.reset();
    n.ses.reset();
    if (how != Stop::kClean) n.fs.Crash();
    clock_.AdvanceMillis(1);
    StartNode(n, o);
  }

  template <typename Pred>
  bool RunUntil(Pred done, int max_rounds = 300) {
    for (int i = 0; i < max_rounds && !done(); ++i) {
      broker_.Pump();
      if (done()) break;
      clock_.AdvanceMillis(100);
      if (each_round_) each_round_();
      ks_->Tick();
      for (auto& n : all_) n->client->Tick();
    }
    return done();
  }

  Status Register(MiniNode& n) {
    std::optional<Status> result;
    n.client->Register([&](Status s) { result = s; });
    RunUntil([&] { return result.has_value(); });
    return result.value_or(InternalError("no result"));
  }

  Status RequestKey(MiniNode& a, MiniNode& b, bool renew = false) {
    std::optional<Status> result;
    a.client->RequestKey(b.n_id, renew, [&](Status s) { result = s; });
    RunUntil([&] { return result.has_value(); });
    return result.value_or(InternalError("no result"));
  }

  Status Send(MiniNode& a, MiniNode& b, const std::string& text) {
    std::optional<Status> result;
    a.client->Send(b.n_id, SecretBytes(AsBytes(text)),
                   [&](StatusOr<SecretBytes> r) { result = r.status(); });
    RunUntil([&] { return result.has_value(); });
    return result.value_or(InternalError("no result"));
  }

  // Two registered nodes allowed to pair, peer lists loaded, a first key.
  std::pair<MiniNode*, MiniNode*> Pair() {
    MiniNode& a = AddNode();
    MiniNode& b = AddNode({a.n_id});
    EXPECT_TRUE(Register(a).ok());
    EXPECT_TRUE(Register(b).ok());
    EXPECT_TRUE(a.client->LoadPeers({b.n_id}).ok());
    EXPECT_TRUE(b.client->LoadPeers({a.n_id}).ok());
    EXPECT_TRUE(RequestKey(a, b).ok());
    return {&a, &b};
  }

  FakeClock clock_;
  std::function<void()> each_round_;  // e.g. a flood, as time advances
  NodeClientOptions node_options_;
  KeyServerOptions ks_options_;  // set before SetUp() runs, or unused
  FakeFileSystem fs_;
  FakeBroker broker_;
  FakeTpm ks_tpm_;
  uint32_t ks_n_id_ = 0;
  std::unique_ptr<NodeDescStore> nodes_;
  std::unique_ptr<GenKeysStore> gen_keys_;
  std::unique_ptr<FakeTransport> ks_transport_;
  std::unique_ptr<KeyServer> ks_;
  std::vector<std::unique_ptr<MiniNode>> all_;
};

}  // namespace kgr::testing

#endif  // KGR_NODE_MINI_KED_TEST_H_
