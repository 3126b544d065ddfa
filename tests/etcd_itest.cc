// EtcdClient and the etcd KS state against a real etcd (1 or 3 members on
// loopback, tests/harness/etcd.h).
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <set>
#include <thread>

#include "cluster/etcd_client.h"
#include "harness/etcd.h"
#include "harness/net.h"
#include "kgr/cluster.h"

namespace kgr {
namespace {

class EtcdTest : public ::testing::Test {
 protected:
  void StartEtcd(int members) {
    dir_ = harness::MakeTempDir("etcd");
    etcd_ = std::make_unique<harness::Etcd>(dir_, members);
    Status st = etcd_->Start();
    ASSERT_TRUE(st.ok()) << st.ToString();
  }
  void TearDown() override {
    etcd_.reset();
    if (!dir_.empty()) harness::RemoveTree(dir_);
  }
  std::unique_ptr<EtcdClient> Client() {
    auto c = EtcdClient::Create(etcd_->ClientOptions());
    EXPECT_TRUE(c.ok());
    return *std::move(c);
  }
  EtcdStateOptions StateOptions(const std::string& prefix) {
    return {etcd_->ClientOptions(), prefix, 50};
  }
  static GenKey NewKey(uint64_t id, uint32_t n1, uint32_t n2) {
    GenKey g;
    g.request_id = id;
    g.n_id1 = n1;
    g.n_id2 = n2;
    g.ctime_unix_ms = 1;
    g.nnsk = *SymmetricKeys::Generate();
    return g;
  }

  std::string dir_;
  std::unique_ptr<harness::Etcd> etcd_;
};

Bytes B(const std::string& s) { return Bytes(s.begin(), s.end()); }

TEST_F(EtcdTest, PutRangeDeleteAndCompareAndSwap) {
  StartEtcd(1);
  auto c = Client();
  auto rev = c->Put("/t/a", B("one"));
  ASSERT_TRUE(rev.ok()) << rev.status().ToString();
  ASSERT_TRUE(c->Put("/t/b", Bytes{0, 1, 2, 255}).ok());
  auto r = c->Range("/t/", EtcdPrefixEnd("/t/"));
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->kvs.size(), 2u);
  EXPECT_EQ(r->kvs[0].key, "/t/a");
  EXPECT_EQ(r->kvs[0].value, B("one"));
  EXPECT_EQ(r->kvs[1].value, (Bytes{0, 1, 2, 255}));
  const int64_t a_rev = r->kvs[0].mod_revision;
  EXPECT_EQ(a_rev, *rev);

  // CAS on mod_revision: the first swap wins, the second (stale) fails and
  // reads the current value in its failure branch.
  EtcdCompare same{"/t/a", EtcdCompare::Target::kMod,
                   EtcdCompare::Result::kEqual, a_rev};
  auto t1 = c->Txn({same}, {EtcdOp::Put("/t/a", B("two"))}, {});
  ASSERT_TRUE(t1.ok());
  EXPECT_TRUE(t1->succeeded);
  auto t2 =
      c->Txn({same}, {EtcdOp::Put("/t/a", B("three"))}, {EtcdOp::Get("/t/a")});
  ASSERT_TRUE(t2.ok());
  EXPECT_FALSE(t2->succeeded);
  ASSERT_EQ(t2->ranges.size(), 1u);
  EXPECT_EQ(t2->ranges[0].kvs.at(0).value, B("two"));
  // Create-only: create_revision == 0 holds only for an absent key.
  EtcdCompare absent{"/t/c", EtcdCompare::Target::kCreate,
                     EtcdCompare::Result::kEqual, 0};
  EXPECT_TRUE(c->Txn({absent}, {EtcdOp::Put("/t/c", B("x"))}, {})->succeeded);
  EXPECT_FALSE(c->Txn({absent}, {EtcdOp::Put("/t/c", B("y"))}, {})->succeeded);

  auto deleted = c->Delete("/t/", EtcdPrefixEnd("/t/"));
  ASSERT_TRUE(deleted.ok());
  EXPECT_EQ(*deleted, 3);
  EXPECT_TRUE(c->Range("/t/a")->kvs.empty());
}

TEST_F(EtcdTest, UnreachableEndpointIsUnavailable) {
  EtcdOptions o;
  o.endpoints = {"127.0.0.1:" + std::to_string(harness::FreeLoopbackPort())};
  o.connect_timeout_ms = 200;
  auto c = EtcdClient::Create(o);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ((*c)->Range("/x").status().code(), StatusCode::kUnavailable);
}

TEST_F(EtcdTest, FailsOverWhenTheCurrentMemberIsKilled) {
  StartEtcd(3);
  auto c = Client();
  ASSERT_TRUE(c->Put("/f/k", B("v0")).ok());
  ASSERT_EQ(c->current_endpoint(), etcd_->endpoints()[0]);
  etcd_->Kill(0);
  for (int i = 1; i <= 20; ++i) {
    auto put = c->Put("/f/k", B("v" + std::to_string(i)));
    ASSERT_TRUE(put.ok()) << i << ": " << put.status().ToString();
  }
  EXPECT_NE(c->current_endpoint(), etcd_->endpoints()[0]);
  EXPECT_GE(c->failovers(), 1u);
  EXPECT_EQ(c->Range("/f/k")->kvs.at(0).value, B("v20"));
  ASSERT_TRUE(etcd_->Restart(0).ok());
  EXPECT_EQ(c->Range("/f/k")->kvs.at(0).value, B("v20"));
}

TEST_F(EtcdTest, StateRefusesAnotherDomainKey) {
  StartEtcd(1);
  DomainKey key = *NewDomainKey(0x11);
  auto first = EtcdKsState::Open(StateOptions("/kgr/d"), key);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  auto again = EtcdKsState::Open(StateOptions("/kgr/d"), key);
  EXPECT_TRUE(again.ok());
  auto other = EtcdKsState::Open(StateOptions("/kgr/d"), *NewDomainKey(0x11));
  EXPECT_EQ(other.status().code(), StatusCode::kFailedPrecondition);
}

TEST_F(EtcdTest, RacingCreatesOfOneRequestIdYieldOneKey) {
  StartEtcd(1);
  DomainKey key = *NewDomainKey(0x22);
  auto a = *EtcdKsState::Open(StateOptions("/kgr/r"), key);
  auto b = *EtcdKsState::Open(StateOptions("/kgr/r"), key);
  constexpr int kIds = 40;
  std::atomic<int> a_won{0}, b_won{0}, a_lost{0}, b_lost{0};
  auto run = [&](KsState& s, uint32_t n2, std::atomic<int>& won,
                 std::atomic<int>& lost) {
    for (int i = 1; i <= kIds; ++i) {
      GenKey g = NewKey(1000 + i, 5, n2);
      std::vector<GenKey> existing;
      Status st = s.gen_keys().Create({&g}, &existing);
      ASSERT_TRUE(st.ok()) << st.ToString();
      if (existing.empty()) {
        ++won;
      } else {
        ASSERT_EQ(existing[0].request_id, g.request_id);
        EXPECT_NE(existing[0].n_id2, n2);  // the other one's key
        ++lost;
      }
    }
  };
  std::thread ta(run, std::ref(*a), 6u, std::ref(a_won), std::ref(a_lost));
  std::thread tb(run, std::ref(*b), 7u, std::ref(b_won), std::ref(b_lost));
  ta.join();
  tb.join();
  EXPECT_EQ(a_won + b_won, kIds);
  EXPECT_EQ(a_lost + b_lost, kIds);
  // Both instances read the same key for every id.
  for (int i = 1; i <= kIds; ++i) {
    auto ga = b->gen_keys().Get(1000 + i);
    auto gb = a->gen_keys().Get(1000 + i);
    ASSERT_TRUE(ga.ok() && gb.ok());
    EXPECT_TRUE(ga->nnsk.Equals(gb->nnsk));
  }
}

TEST_F(EtcdTest, NodeDescWritesMergeReplayFloorsAndOthersSeeChanges) {
  StartEtcd(1);
  DomainKey key = *NewDomainKey(0x33);
  auto a = *EtcdKsState::Open(StateOptions("/kgr/n"), key);
  auto b = *EtcdKsState::Open(StateOptions("/kgr/n"), key);
  NodeDesc d;
  d.n_id = 0x1234;
  d.ntag = SecretBytes(32);
  ASSERT_TRUE(a->nodes().Put(d).ok());
  // b reads it through (not polled yet, or polled: either way).
  auto seen = b->nodes().Get(0x1234);
  ASSERT_TRUE(seen.ok()) << seen.status().ToString();
  // a raises the floors; b, with its older copy, changes the peers.
  NodeDesc high = d.Clone();
  high.last_counter = 500;
  high.request_floor = 77;
  ASSERT_TRUE(a->nodes().Put(high).ok());
  NodeDesc stale = seen->Clone();
  stale.allowed_peers = {9};
  stale.last_counter = 10;
  ASSERT_TRUE(b->nodes().Put(stale).ok());
  auto merged = a->nodes().Get(0x1234);
  for (int i = 0; i < 50 && merged->allowed_peers.empty(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    merged = a->nodes().Get(0x1234);
  }
  ASSERT_TRUE(merged.ok());
  EXPECT_EQ(merged->allowed_peers, std::vector<uint32_t>{9});
  EXPECT_EQ(merged->last_counter, 500u);
  EXPECT_EQ(merged->request_floor, 77u);
  // a learned that another instance changed node 0x1234.
  std::vector<uint32_t> changed = a->nodes().TakeChanged();
  EXPECT_NE(std::find(changed.begin(), changed.end(), 0x1234u), changed.end());
}

// The lost update of e2e_cluster: instance b changes a record from a copy
// older than a's change to another field. Update re-applies b's change to
// the stored record, so both changes survive (a blind write of b's copy,
// even one merging the replay floors, loses a's).
TEST_F(EtcdTest, UpdatesFromAStaleCopyKeepTheOtherInstancesChange) {
  StartEtcd(1);
  DomainKey key = *NewDomainKey(0x35);
  auto a = *EtcdKsState::Open(StateOptions("/kgr/u"), key);
  EtcdStateOptions slow = StateOptions("/kgr/u");
  slow.poll_ms = 60000;  // b never hears of a's writes by itself
  auto b = *EtcdKsState::Open(slow, key);
  auto add_peer = [](uint32_t n_id, uint32_t peer) {
    return [=](NodeDescTxn& txn) -> Status {
      KGR_ASSIGN_OR_RETURN(NodeDesc d, txn.Get(n_id));
      d.allowed_peers.push_back(peer);
      txn.Put(std::move(d));
      return OkStatus();
    };
  };
  NodeDesc d;
  d.n_id = 0x77;
  d.ntag = SecretBytes(32);
  ASSERT_TRUE(a->nodes().Put(d).ok());
  ASSERT_TRUE(b->nodes().Get(0x77).ok());  // b's copy: authorized
  // a registers the node...
  std::vector<NodeDesc> written;
  Status st = a->nodes().Update(
      [](NodeDescTxn& txn) -> Status {
        KGR_ASSIGN_OR_RETURN(NodeDesc n, txn.Get(0x77));
        n.state = NodeState::kRegistered;
        n.nksk_version = 1;
        txn.Put(std::move(n));
        return OkStatus();
      },
      &written);
  ASSERT_TRUE(st.ok()) << st.ToString();
  ASSERT_EQ(written.size(), 1u);
  // ...then b, from its older copy, allows a peer.
  st = b->nodes().Update(add_peer(0x77, 9), &written);
  ASSERT_TRUE(st.ok()) << st.ToString();
  ASSERT_EQ(written.size(), 1u);
  EXPECT_EQ(written[0].state, NodeState::kRegistered);
  auto fresh = *EtcdKsState::Open(StateOptions("/kgr/u"), key);
  auto stored = fresh->nodes().Get(0x77);
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(stored->state, NodeState::kRegistered) << "a's change was lost";
  EXPECT_EQ(stored->nksk_version, 1u);
  EXPECT_EQ(stored->allowed_peers, std::vector<uint32_t>{9});
  // b learned that its copy was stale.
  std::vector<uint32_t> changed = b->nodes().TakeChanged();
  EXPECT_NE(std::find(changed.begin(), changed.end(), 0x77u), changed.end());

  // Both at once, many times: every peer either adds is kept.
  constexpr uint32_t kEach = 25;
  auto run = [&](KsState& s, uint32_t first) {
    for (uint32_t p = first; p < first + kEach; ++p) {
      Status added = s.nodes().Update(add_peer(0x77, p));
      ASSERT_TRUE(added.ok()) << added.ToString();
    }
  };
  std::thread ta(run, std::ref(*a), 1000u);
  std::thread tb(run, std::ref(*b), 2000u);
  ta.join();
  tb.join();
  auto last = *EtcdKsState::Open(StateOptions("/kgr/u"), key);
  stored = last->nodes().Get(0x77);
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(stored->allowed_peers.size(), 1 + 2 * kEach);
  EXPECT_EQ(stored->state, NodeState::kRegistered);
}

// A change that refuses (a precondition the stored record no longer meets)
// writes nothing; one that creates a record fails if another instance
// created it first.
TEST_F(EtcdTest, UpdateAbortsWithoutWritingAndCreatesOnlyOnce) {
  StartEtcd(1);
  DomainKey key = *NewDomainKey(0x36);
  auto a = *EtcdKsState::Open(StateOptions("/kgr/c"), key);
  EtcdStateOptions slow = StateOptions("/kgr/c");
  slow.poll_ms = 60000;
  auto b = *EtcdKsState::Open(slow, key);
  auto create = [](uint32_t entry) {
    return [=](NodeDescTxn& txn) -> Status {
      if (txn.Get(0x55).ok()) return AbortedError("N_ID taken");
      NodeDesc d;
      d.n_id = 0x55;
      d.entry_no = static_cast<uint16_t>(entry);
      d.ntag = SecretBytes(32);
      txn.Put(std::move(d));
      return OkStatus();
    };
  };
  ASSERT_TRUE(b->nodes().Get(0x55).status().code() == StatusCode::kNotFound);
  ASSERT_TRUE(a->nodes().Update(create(1)).ok());
  EXPECT_EQ(b->nodes().Update(create(2)).code(), StatusCode::kAborted);
  EXPECT_EQ(b->nodes().Get(0x55)->entry_no, 1);
  Status refused = a->nodes().Update([](NodeDescTxn& txn) -> Status {
    KGR_ASSIGN_OR_RETURN(NodeDesc d, txn.Get(0x55));
    d.entry_no = 3;
    txn.Put(std::move(d));
    return FailedPreconditionError("no");
  });
  EXPECT_EQ(refused.code(), StatusCode::kFailedPrecondition);
  auto fresh = *EtcdKsState::Open(StateOptions("/kgr/c"), key);
  EXPECT_EQ(fresh->nodes().Get(0x55)->entry_no, 1);
}

// The AC floor is one for all instances: a counter one instance accepted
// is refused by the other, even one this other never saw; a value an etcd
// writer forged does not verify.
TEST_F(EtcdTest, AcFloorIsSharedAndOnlyRises) {
  StartEtcd(1);
  DomainKey key = *NewDomainKey(0x37);
  auto a = *EtcdKsState::Open(StateOptions("/kgr/ac"), key);
  auto b = *EtcdKsState::Open(StateOptions("/kgr/ac"), key);
  ASSERT_NE(a->ac_floor(), nullptr);
  EXPECT_EQ(*a->ac_floor()->Load(), 0u);
  ASSERT_TRUE(a->ac_floor()->Raise(10).ok());
  EXPECT_EQ(b->ac_floor()->Raise(5).code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(b->ac_floor()->Raise(10).code(), StatusCode::kAlreadyExists);
  ASSERT_TRUE(b->ac_floor()->Raise(11).ok());
  EXPECT_EQ(*a->ac_floor()->Load(), 11u);
  EXPECT_EQ(a->ac_floor()->Raise(11).code(), StatusCode::kAlreadyExists);
  // Racing raises: each counter accepted by exactly one instance.
  std::atomic<int> accepted{0};
  auto run = [&](KsState& s) {
    for (uint64_t c = 100; c < 140; ++c) {
      Status st = s.ac_floor()->Raise(c);
      if (st.ok())
        ++accepted;
      else
        EXPECT_EQ(st.code(), StatusCode::kAlreadyExists) << st.ToString();
    }
  };
  std::thread ta(run, std::ref(*a));
  std::thread tb(run, std::ref(*b));
  ta.join();
  tb.join();
  EXPECT_LE(accepted.load(), 40);
  EXPECT_EQ(*b->ac_floor()->Load(), 139u);
  // A lowered value written straight into etcd is refused.
  Bytes forged(40, 0);
  ASSERT_TRUE(Client()->Put("/kgr/ac/ac_floor", forged).ok());
  EXPECT_EQ(a->ac_floor()->Load().status().code(), StatusCode::kDataLoss);
  EXPECT_FALSE(a->ac_floor()->Raise(200).ok());
}

TEST_F(EtcdTest, NothingInEtcdIsReadableWithoutTheDomainKey) {
  StartEtcd(1);
  DomainKey key = *NewDomainKey(0x44);
  auto s = *EtcdKsState::Open(StateOptions("/kgr/s"), key);
  GenKey g = NewKey(42, 1, 2);
  std::vector<GenKey> existing;
  ASSERT_TRUE(s->gen_keys().Create({&g}, &existing).ok());
  auto raw = Client()->Range("/kgr/s/", EtcdPrefixEnd("/kgr/s/"));
  ASSERT_TRUE(raw.ok());
  const SecretBytes& nnsk = g.nnsk.RawEncKeyBytes();
  const SecretBytes& dk = key.keys.RawEncKeyBytes();
  for (const EtcdKeyValue& kv : raw->kvs) {
    for (const SecretBytes* secret : {&nnsk, &dk}) {
      EXPECT_EQ(std::search(kv.value.begin(), kv.value.end(),
                            secret->span().begin(), secret->span().end()),
                kv.value.end())
          << kv.key;
    }
  }
  // Under another key the record does not open.
  // (RecordCodec keeps a reference to its keys: they must outlive it.)
  auto other = SymmetricKeys::Generate();
  ASSERT_TRUE(other.ok());
  RecordCodec wrong(*other, 0x44);
  auto sealed = Client()->Range("/kgr/s/gen_keys/000000000000002a");
  ASSERT_EQ(sealed->kvs.size(), 1u);
  EXPECT_FALSE(wrong.Decode<GenKey>(sealed->kvs[0].value).ok());
}

// Loopback figures for docs/cluster.md (printed, never asserted): one
// create-only txn of one key, one client waiting for each; then 4 clients.
TEST_F(EtcdTest, TxnLatencyAndThroughputOnLoopback) {
  StartEtcd(1);
  constexpr int kTxns = 200;
  auto one_txn = [](EtcdClient& c, const std::string& key) {
    EtcdCompare absent{key, EtcdCompare::Target::kCreate,
                       EtcdCompare::Result::kEqual, 0};
    auto r = c.Txn({absent}, {EtcdOp::Put(key, Bytes(150, 7))}, {});
    return r.ok() && r->succeeded;
  };
  auto c = Client();
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < kTxns; ++i) {
    ASSERT_TRUE(one_txn(*c, "/lat/" + std::to_string(i)));
  }
  double serial_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0)
          .count();
  constexpr int kThreads = 4;
  std::atomic<int> ok{0};
  t0 = std::chrono::steady_clock::now();
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      auto mine = EtcdClient::Create(etcd_->ClientOptions());
      for (int i = 0; i < kTxns; ++i) {
        ok += one_txn(**mine,
                      "/thr/" + std::to_string(t) + "/" + std::to_string(i));
      }
    });
  }
  for (auto& th : threads) th.join();
  double parallel_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0)
          .count();
  EXPECT_EQ(ok, kThreads * kTxns);
  std::printf(
      "etcd txn on loopback: %.2f ms each (1 client, %d txns), %.0f txns/s "
      "with %d clients\n",
      1000 * serial_s / kTxns, kTxns, kThreads * kTxns / parallel_s, kThreads);
}

}  // namespace
}  // namespace kgr
