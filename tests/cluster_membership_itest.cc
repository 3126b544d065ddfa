// The membership ceremony (kgr/cluster_membership.h) against a real etcd
// (tests/harness/etcd.h): join with and without approval, and removal with
// the online rotation of the domain key while another instance writes.
// Members are in-process: each has its own member key, as each machine
// would (the sealing of that key under a TPM-held NK: member_key_test.cc).
#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <thread>

#include "cluster/etcd_client.h"
#include "harness/etcd.h"
#include "harness/net.h"
#include "kgr/cluster.h"
#include "kgr/cluster_membership.h"

namespace kgr {
namespace {

constexpr char kPrefix[] = "/kgr/ked";

class ClusterMembershipTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = harness::MakeTempDir("ceremony");
    etcd_ = std::make_unique<harness::Etcd>(dir_, 1);
    Status st = etcd_->Start();
    ASSERT_TRUE(st.ok()) << st.ToString();
  }
  void TearDown() override {
    etcd_.reset();
    harness::RemoveTree(dir_);
  }
  MemberAccess Member(uint8_t lane) {
    MemberAccess m;
    m.etcd = etcd_->ClientOptions();
    m.prefix = kPrefix;
    m.lane = lane;
    m.name = "ks" + std::to_string(lane);
    m.key = *GenerateX25519();
    return m;
  }
  // A member's KS state on etcd, following the cluster's epoch.
  std::unique_ptr<EtcdKsState> OpenState(const MemberAccess& m) {
    EtcdStateOptions o{etcd_->ClientOptions(), kPrefix, 50};
    auto s = EtcdKsState::Open(
        o, DomainKeySource([&m] { return MemberDomainKeys(m); }));
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return s.ok() ? *std::move(s) : nullptr;
  }
  // `joiner` joins with `approver`'s approval; its keys.
  std::vector<DomainKey> Join(const MemberAccess& joiner,
                              const MemberAccess& approver) {
    auto fp = RequestJoin(joiner);
    EXPECT_TRUE(fp.ok()) << fp.status().ToString();
    auto waiting = std::async(std::launch::async,
                              [&] { return AwaitJoin(joiner, 10000); });
    Status ok = ApproveJoin(approver, *fp);
    EXPECT_TRUE(ok.ok()) << ok.ToString();
    auto keys = waiting.get();
    EXPECT_TRUE(keys.ok()) << keys.status().ToString();
    return keys.ok() ? *std::move(keys) : std::vector<DomainKey>{};
  }
  static NodeDesc Node(uint32_t n_id) {
    NodeDesc d;
    d.n_id = n_id;
    d.ntag = SecretBytes(32);
    return d;
  }
  std::vector<EtcdKeyValue> RawRecords() {
    auto c = *EtcdClient::Create(etcd_->ClientOptions());
    std::vector<EtcdKeyValue> out;
    for (std::string t : {"/node_desc/", "/gen_keys/"}) {
      const std::string base = std::string(kPrefix) + t;
      auto r = c->Range(base, EtcdPrefixEnd(base));
      EXPECT_TRUE(r.ok());
      for (auto& kv : r->kvs) out.push_back(kv);
    }
    return out;
  }

  std::string dir_;
  std::unique_ptr<harness::Etcd> etcd_;
};

TEST_F(ClusterMembershipTest, JoinWithApprovalTransfersTheDomainKey) {
  MemberAccess m0 = Member(0), m1 = Member(1);
  DomainKey key = *NewDomainKey(0x1111);
  ASSERT_TRUE(InitCluster(m0, key).ok());
  EXPECT_EQ(InitCluster(m0, key).code(), StatusCode::kFailedPrecondition);

  std::vector<DomainKey> got = Join(m1, m0);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(DomainCheckValue(got[0]), DomainCheckValue(key));

  // etcd holds no domain key in clear.
  auto c = *EtcdClient::Create(etcd_->ClientOptions());
  auto all = c->Range("/", EtcdPrefixEnd("/"));
  ASSERT_TRUE(all.ok());
  const Bytes enc(key.keys.RawEncKeyBytes().span().begin(),
                  key.keys.RawEncKeyBytes().span().end());
  for (const auto& kv : all->kvs) {
    std::string v(kv.value.begin(), kv.value.end());
    EXPECT_EQ(v.find(ToHex(enc)), std::string::npos) << kv.key;
    EXPECT_EQ(
        std::search(kv.value.begin(), kv.value.end(), enc.begin(), enc.end()),
        kv.value.end())
        << kv.key;
  }

  // Both members' states read what the other writes.
  auto s0 = OpenState(m0);
  auto s1 = OpenState(m1);
  ASSERT_TRUE(s0 && s1);
  ASSERT_TRUE(s0->nodes().Put(Node(0x42)).ok());
  EXPECT_TRUE(s1->nodes().Get(0x42).ok());

  auto view = ReadCluster(etcd_->ClientOptions(), kPrefix);
  ASSERT_TRUE(view.ok());
  EXPECT_EQ(view->members.size(), 2u);
  EXPECT_TRUE(view->joins.empty());
  EXPECT_EQ(view->generation, 1u);
}

TEST_F(ClusterMembershipTest, JoinWithoutApprovalIsRefused) {
  MemberAccess m0 = Member(0), m1 = Member(1), outsider = Member(2);
  ASSERT_TRUE(InitCluster(m0, *NewDomainKey(0x2222)).ok());
  auto fp = RequestJoin(m1);
  ASSERT_TRUE(fp.ok());

  // Nobody approves: the wait ends, the request is withdrawn.
  auto keys = AwaitJoin(m1, 600);
  EXPECT_EQ(keys.status().code(), StatusCode::kDeadlineExceeded);
  EXPECT_TRUE(ReadCluster(etcd_->ClientOptions(), kPrefix)->joins.empty());
  EXPECT_EQ(MemberDomainKeys(m1).status().code(), StatusCode::kNotFound);

  // A non-member cannot approve (it holds no key to give).
  ASSERT_TRUE(RequestJoin(m1).ok());
  EXPECT_EQ(ApproveJoin(outsider, *fp).code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(ApproveJoin(m0, "0000-0000").code(), StatusCode::kNotFound);

  // Someone with write access to etcd forges a member record for the
  // joiner with a key of its own: the joiner refuses it.
  DomainKey forged = *NewDomainKey(0x2222);
  ClusterMember fake{1, "ks1", m1.key.public_key, {}};
  auto c = *EtcdClient::Create(etcd_->ClientOptions());
  std::string json = "{\"lane\":1,\"name\":\"ks1\",\"public\":\"" +
                     ToHex(m1.key.public_key) + "\",\"keys\":{\"1\":\"" +
                     ToHex(*WrapDomainKey(forged, 1, m1.key.public_key)) +
                     "\"}}";
  ASSERT_TRUE(c->Put(std::string(kPrefix) + "/cluster/members/001",
                     Bytes(json.begin(), json.end()))
                  .ok());
  auto taken = AwaitJoin(m1, 2000);
  EXPECT_EQ(taken.status().code(), StatusCode::kDataLoss)
      << taken.status().ToString();
  // And a state that follows the cluster does not open with it.
  EtcdStateOptions o{etcd_->ClientOptions(), kPrefix, 50};
  EXPECT_FALSE(EtcdKsState::Open(
                   o, DomainKeySource([&m1] { return MemberDomainKeys(m1); }))
                   .ok());
}

TEST_F(ClusterMembershipTest, RemovalRotatesOnlineAndLocksTheMemberOut) {
  MemberAccess m0 = Member(0), m1 = Member(1), m2 = Member(2);
  ASSERT_TRUE(InitCluster(m0, *NewDomainKey(0x3333)).ok());
  Join(m1, m0);
  std::vector<DomainKey> removed_keys = Join(m2, m1);
  ASSERT_EQ(removed_keys.size(), 1u);
  auto s0 = OpenState(m0);
  auto s1 = OpenState(m1);
  auto s2 = OpenState(m2);
  ASSERT_TRUE(s0 && s1 && s2);
  for (uint32_t id = 1; id <= 20; ++id) {
    ASSERT_TRUE(s2->nodes().Put(Node(id)).ok());
  }
  // The shared AC floor, tagged under generation 1.
  ASSERT_NE(s0->ac_floor(), nullptr);
  ASSERT_TRUE(s0->ac_floor()->Raise(77).ok());

  // ks1 keeps writing while ks0 removes ks2.
  std::atomic<bool> stop{false};
  std::vector<uint32_t> written;
  std::thread writer([&] {
    for (uint32_t id = 1000; !stop; ++id) {
      if (s1->nodes().Put(Node(id)).ok()) written.push_back(id);
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  });
  auto report = RemoveMember(m0, 2, 300);
  stop = true;
  writer.join();
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(report->generation, 2u);
  EXPECT_GE(report->resealed, 20u);
  ASSERT_GT(written.size(), 20u);

  // Every write is readable by the remaining members, also when opened
  // afresh.
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_EQ(s1->key_generations(), std::vector<uint32_t>{2});
  auto fresh = OpenState(m0);
  ASSERT_TRUE(fresh);
  EXPECT_TRUE(fresh->nodes().corrupt_records().empty());
  for (uint32_t id : written) {
    EXPECT_TRUE(fresh->nodes().Get(id).ok()) << id;
    EXPECT_TRUE(s0->nodes().Get(id).ok()) << id;
  }
  for (uint32_t id = 1; id <= 20; ++id)
    EXPECT_TRUE(fresh->nodes().Get(id).ok());
  // The AC floor survives the rotation: re-tagged under generation 2 (a
  // floor left under the retired key would stop every AC request).
  auto floor = fresh->ac_floor()->Load();
  ASSERT_TRUE(floor.ok()) << floor.status().ToString();
  EXPECT_EQ(*floor, 77u);
  EXPECT_FALSE(fresh->ac_floor()->Raise(77).ok());
  EXPECT_TRUE(fresh->ac_floor()->Raise(78).ok());

  // The removed member: no key in etcd, its running state stops writing,
  // and its old key opens none of the raw records.
  EXPECT_EQ(MemberDomainKeys(m2).status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(s2->key_generations().empty());
  EXPECT_FALSE(s2->nodes().Put(Node(5000)).ok());
  ASSERT_TRUE(removed_keys[0].keys.Prepare().ok());
  RecordCodec old_codec(removed_keys[0].keys, removed_keys[0].domain_id);
  auto raw = RawRecords();
  ASSERT_GT(raw.size(), written.size());
  for (const auto& kv : raw) {
    const RecordType type = kv.key.find("/gen_keys/") != std::string::npos
                                ? RecordType::kGenKey
                                : RecordType::kNodeDesc;
    EXPECT_FALSE(old_codec.Verify(type, kv.value).ok()) << kv.key;
  }
  auto view = ReadCluster(etcd_->ClientOptions(), kPrefix);
  EXPECT_EQ(view->generation, 2u);
  EXPECT_EQ(view->resealed, 2u);
  for (const auto& m : view->members) EXPECT_EQ(m.wrapped.size(), 1u);
  // Last-member and unknown-lane removals are refused.
  EXPECT_EQ(RemoveMember(m0, 7, 0).status().code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace kgr
