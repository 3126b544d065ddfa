// The KED fixture with groups on both sides: the KS with its `groups` store
// and nodes each with a grp_keys store, collecting the group messages they
// deliver. For the tests of the node's group procedures (group_join.cc,
// group_rekey.cc, group_sync.cc) against the real KS over the fake broker.
#ifndef KGR_NODE_GROUP_FIXTURE_H_
#define KGR_NODE_GROUP_FIXTURE_H_

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "kgr/group_frames.h"
#include "node/ked_fixture.h"

namespace kgr::testing {

class GroupKedFixture : public KedFixture {
 protected:
  void SetUp() override {
    auto g = GroupDescStore::Open(
        fs_, "/ks/groups", SymmetricKeys(*RandomSecret(32), *RandomSecret(32)),
        7);
    ASSERT_TRUE(g.ok()) << g.status().ToString();
    ks_groups_ = std::move(*g);
    ks_options_.groups = ks_groups_.get();
    KedFixture::SetUp();
  }

  // A registered node with its group store.
  KedNode& Member() {
    KedNode& n = AddNode();
    OpenWithGroups(n);
    EXPECT_TRUE(Register(n).ok());
    return n;
  }
  // (Re)starts the node's process with its group store (a restart: the
  // client is rebuilt from its TPM and files).
  void OpenWithGroups(KedNode& n, uint64_t counter_floor = 0) {
    if (n.client) counter_floor = n.client->last_counter() + 1'000'000;
    n.client.reset();
    n.ses.reset();
    groups_[n.n_id].reset();
    auto own = LoadOwnData(n.tpm);
    ASSERT_TRUE(own.ok());
    auto ses = SesKeysStore::Open(n.fs, "/ses", own->nk, n.n_id);
    auto grp = GroupStore::Open(n.fs, "/grp", own->nk, n.n_id);
    ASSERT_TRUE(ses.ok() && grp.ok());
    n.ses = std::move(*ses);
    groups_[n.n_id] = std::move(*grp);
    NodeClientOptions o = node_options_;
    o.counter_floor = counter_floor;
    n.client = std::make_unique<NodeClient>(std::move(*own), n.tpm,
                                            *n.transport, *n.ses, clock_, o);
    n.client->SetGroupStore(groups_[n.n_id].get());
    n.client->SetGroupMessageHandler(
        [this, id = n.n_id](const GroupMessage& m) {
          got_[id].push_back(
              std::string(m.data.span().begin(), m.data.span().end()));
        });
    ASSERT_TRUE(n.client->Start().ok());
  }

  uint32_t Create(const std::string& name, std::vector<KedNode*> members,
                  GroupMode mode = GroupMode::kGroupKey) {
    std::vector<uint32_t> ids;
    for (KedNode* m : members) ids.push_back(m->n_id);
    auto ans = ks_->CreateGroup(AcGroupCreateReq{name, mode, 0, ids});
    EXPECT_EQ(ans.status, 0) << ans.message;
    return ans.group_id;
  }
  AcGroupMembersAns Change(const std::string& name, bool add,
                           std::vector<KedNode*> members) {
    std::vector<uint32_t> ids;
    for (KedNode* m : members) ids.push_back(m->n_id);
    return ks_->ChangeGroupMembers(
        AcGroupMembersReq{name, static_cast<uint8_t>(add), ids});
  }
  uint32_t KsVersion(uint32_t group_id) {
    auto g = ks_groups_->Get(group_id);
    return g.ok() ? g->key_version : 0;
  }
  // The group's key version at `n` (0: not in the group).
  static uint32_t VersionAt(const KedNode& n, uint32_t group_id) {
    for (const GroupInfo& g : n.client->Groups()) {
      if (g.group_id == group_id) return g.key_version;
    }
    return 0;
  }
  // Runs until every node in `members` holds the KS's current version.
  bool Converged(uint32_t group_id, std::vector<KedNode*> members) {
    return RunUntil([&] {
      for (KedNode* m : members) {
        if (VersionAt(*m, group_id) != KsVersion(group_id)) return false;
      }
      return true;
    });
  }
  Status SendText(KedNode& n, uint32_t group_id, const std::string& text) {
    Status st = n.client->SendGroup(group_id, SecretBytes(AsBytes(text)));
    broker_.Pump();
    return st;
  }
  // The stored group record of `n` (its keys as on disk).
  StatusOr<GroupRecord> StoredGroup(const KedNode& n, uint32_t group_id) {
    return groups_.at(n.n_id)->Get(uint64_t{group_id} << 32);
  }
  // Every message published on a topic containing `part`, in order.
  std::vector<PublishedMessage> PublishedOn(const std::string& part) {
    std::vector<PublishedMessage> out;
    for (auto& m : broker_.published()) {
      if (m.topic.find(part) != std::string::npos) out.push_back(m);
    }
    return out;
  }

  std::unique_ptr<GroupDescStore> ks_groups_;
  std::map<uint32_t, std::unique_ptr<GroupStore>> groups_;
  std::map<uint32_t, std::vector<std::string>> got_;
};

}  // namespace kgr::testing

#endif  // KGR_NODE_GROUP_FIXTURE_H_
