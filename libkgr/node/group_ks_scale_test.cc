// A group of 10,000 members through the KS's own procedures (KED fixture,
// fakes): created by one AC request, a leave, the KS restarted from its
// files, another leave. Every remaining member, holding the path the KS
// gave it at the creation and applying each rekey the KS published, ends
// with the KS's group key; the leaver cannot follow; each leave rewrote a
// few records of the `groups` file, not the group; the AC's list of the
// members comes in several pages. And the batch window: joins waiting in it
// and the leaves of a removal make one rekey, one epoch step.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <optional>

#include "group/member_keys.h"
#include "kgr/group_frames.h"
#include "kgr/group_rekey.h"
#include "ks/group_table.h"
#include "node/ked_fixture.h"

namespace kgr::testing {
namespace {

constexpr int kMembers = 10000;

class GroupKsScaleTest : public KedFixture {
 protected:
  void SetUp() override {
    auto enc = RandomSecret(32);
    auto mac = RandomSecret(32);
    ASSERT_TRUE(enc.ok() && mac.ok());
    group_keys_ = SymmetricKeys(std::move(*enc), std::move(*mac));
    OpenGroups();
    KedFixture::SetUp();
  }
  void OpenGroups() {
    ks_options_.groups = nullptr;
    groups_.reset();
    auto g = GroupDescStore::Open(fs_, "/ks/groups", group_keys_.Clone(), 7);
    ASSERT_TRUE(g.ok()) << g.status().ToString();
    groups_ = std::move(*g);
    ks_options_.groups = groups_.get();
  }
  void RestartKsWithGroups() {
    ks_options_.groups = nullptr;
    RestartKs();
    OpenGroups();
    RestartKs();
  }

  // The group as the KS's records hold it.
  ks::LoadedGroup Stored(uint32_t group_id) {
    auto g = ks::LoadGroupRecords(*groups_, group_id);
    EXPECT_TRUE(g.ok()) << g.status().ToString();
    return std::move(*g);
  }
  // Every group_rekey part published on `topic` from message `*seen` on.
  std::vector<GroupRekeyPart> NewRekeys(const std::string& topic,
                                        std::span<const uint8_t> ks_public,
                                        size_t* seen) {
    std::vector<GroupRekeyPart> out;
    const auto& all = broker_.published();
    for (; *seen < all.size(); ++*seen) {
      if (all[*seen].topic != topic) continue;
      FrameHeader h;
      auto part = OpenGroupRekey(all[*seen].payload, ks_public, &h);
      EXPECT_TRUE(part.ok()) << part.status().ToString();
      if (part.ok()) out.push_back(std::move(*part));
    }
    return out;
  }
  // The members as the AC lists them, page after page.
  std::vector<uint32_t> ListedMembers(int* pages) {
    std::vector<uint32_t> out;
    AcGroupListReq req;
    *pages = 0;
    while (true) {
      auto page = ks_->ListGroups(req.after, req.member_after);
      ++*pages;
      EXPECT_LE(page.groups.size(), 1u);
      if (page.groups.empty()) break;
      const auto& e = page.groups.back();
      out.insert(out.end(), e.members.begin(), e.members.end());
      if (page.more != 2) break;
      req = {e.group_id, e.members.back()};
    }
    return out;
  }

  RecordKeys group_keys_;
  std::unique_ptr<GroupDescStore> groups_;
};

TEST_F(GroupKsScaleTest, TenThousandMembersLeaveRestartLeaveConverge) {
  KedNode& online = AddNode();  // one member that is really there
  ASSERT_TRUE(Register(online).ok());
  std::vector<uint32_t> ids = {online.n_id};
  for (int i = 1; i < kMembers; ++i) {
    AcAuthorizeAns ans;
    ASSERT_TRUE(ks_->AuthorizeNode(AcAuthorizeReq{}, &ans).ok());
    ids.push_back(ans.n_id);
  }
  auto created =
      ks_->CreateGroup(AcGroupCreateReq{"big", GroupMode::kGroupKey, 0, ids});
  ASSERT_EQ(created.status, 0) << created.message;
  const uint32_t id = created.group_id;

  // Every member's path at the creation (the KS sends it by unicast to the
  // registered one; the others would get theirs when they register).
  std::map<uint32_t, group::GroupMemberKeys> members;
  {
    ks::LoadedGroup g = Stored(id);
    ASSERT_EQ(g.tree.size(), size_t{kMembers});
    for (uint32_t m : ids) {
      auto keys = group::GroupMemberKeys::FromPath(*g.tree.PathOf(m));
      ASSERT_TRUE(keys.ok());
      members.emplace(m, std::move(*keys));
    }
  }
  GroupJoin join;
  for (const auto& msg : broker_.published()) {
    auto d = nodes_->Get(online.n_id);
    FrameHeader h;
    auto body = OpenBody<GroupJoin>(msg.payload, d->nksk, &h);
    if (body.ok()) join = std::move(*body);
  }
  ASSERT_EQ(join.group_id, id);
  ASSERT_EQ(join.members.size(), size_t{kMembers});
  const std::string topic = GroupTopicName("kgr", id, true, join.rekey_topic);
  size_t seen = 0;
  NewRekeys(topic, join.ks_sign_public, &seen);

  auto leave_and_check = [&](uint32_t leaver) {
    const uint64_t entries = groups_->file().journal_entries();
    auto left = ks_->ChangeGroupMembers(AcGroupMembersReq{"big", 0, {leaver}});
    ASSERT_EQ(left.status, 0) << left.message;
    // The header, one tree piece per level and one member piece.
    const uint64_t written = groups_->file().journal_entries() - entries;
    EXPECT_GT(written, 0u);
    EXPECT_LE(written, 12u);
    auto parts = NewRekeys(topic, join.ks_sign_public, &seen);
    ASSERT_FALSE(parts.empty());
    size_t wraps = 0;
    for (const auto& p : parts) wraps += p.entries.size();
    EXPECT_LE(wraps, 4u * 7);  // 4 * depth - 1 for depth 7 (4^7 >= 10,000)
    group::GroupMemberKeys gone = std::move(members.at(leaver));
    members.erase(leaver);
    for (const auto& p : parts) {
      auto outcome = gone.Apply(p, 0);
      ASSERT_TRUE(outcome.ok());
      EXPECT_NE(*outcome, group::RekeyOutcome::kApplied);
    }
    ks::LoadedGroup g = Stored(id);
    auto ks_keys = g.tree.DataKeys();
    ASSERT_TRUE(ks_keys.ok());
    int converged = 0;
    for (auto& [m, keys] : members) {
      for (const auto& p : parts) ASSERT_TRUE(keys.Apply(p, 0).ok());
      converged += keys.epoch() == g.header.key_version &&
                   keys.CurrentDataKeys().RawEncKeyBytes().Equals(
                       ks_keys->RawEncKeyBytes());
    }
    EXPECT_EQ(static_cast<size_t>(converged), members.size());
  };

  leave_and_check(ids[kMembers / 2]);
  RestartKsWithGroups();  // the group comes back from its records
  leave_and_check(ids[123]);

  int pages = 0;
  auto listed = ListedMembers(&pages);
  EXPECT_EQ(listed.size(), size_t{kMembers - 2});
  EXPECT_GT(pages, 1);  // 40 KB of member ids do not fit one 32 KB page
  EXPECT_TRUE(std::is_sorted(listed.begin(), listed.end()));
}

// The batch window (kgr-ks --group-batch-ms): a join waits in it; a
// removal of two members then applies the join and both leaves as ONE
// rekey message (one epoch, published once) and one epoch step; every
// member that stays or joins holds the new key, the two that left do not.
TEST_F(GroupKsScaleTest, WaitingJoinsAndTwoLeavesMakeOneRekey) {
  std::vector<KedNode*> n;
  for (int i = 0; i < 4; ++i) {
    n.push_back(&AddNode());
    ASSERT_TRUE(Register(*n.back()).ok());
  }
  auto created = ks_->CreateGroup(AcGroupCreateReq{
      "g", GroupMode::kGroupKey, 0, {n[0]->n_id, n[1]->n_id, n[2]->n_id}});
  ASSERT_EQ(created.status, 0) << created.message;
  const uint32_t v0 = created.key_version;
  auto path_of = [&](KedNode& node) {
    std::optional<GroupJoin> last;
    auto d = nodes_->Get(node.n_id);
    for (const auto& msg : broker_.published()) {
      FrameHeader h;
      auto body = OpenBody<GroupJoin>(msg.payload, d->nksk, &h);
      if (body.ok()) last = std::move(*body);
    }
    return last;
  };
  auto join = path_of(*n[0]);
  ASSERT_TRUE(join.has_value());
  auto keys0 =
      group::GroupMemberKeys::FromPath(*GroupPath::Parse(join->path.span()));
  auto keys1 = group::GroupMemberKeys::FromPath(
      *GroupPath::Parse(path_of(*n[1])->path.span()));
  ASSERT_TRUE(keys0.ok() && keys1.ok());
  const std::string topic =
      GroupTopicName("kgr", created.group_id, true, join->rekey_topic);
  size_t seen = 0;
  NewRekeys(topic, join->ks_sign_public, &seen);

  auto added = ks_->ChangeGroupMembers(AcGroupMembersReq{"g", 1, {n[3]->n_id}});
  ASSERT_EQ(added.status, 0) << added.message;
  EXPECT_EQ(added.key_version, v0);  // waits for the window
  EXPECT_TRUE(NewRekeys(topic, join->ks_sign_public, &seen).empty());
  auto left = ks_->ChangeGroupMembers(
      AcGroupMembersReq{"g", 0, {n[1]->n_id, n[2]->n_id}});
  ASSERT_EQ(left.status, 0) << left.message;
  EXPECT_EQ(left.key_version, v0 + 1);  // one epoch step for all three
  auto parts = NewRekeys(topic, join->ks_sign_public, &seen);
  ASSERT_FALSE(parts.empty());
  for (const auto& p : parts) EXPECT_EQ(p.epoch, v0 + 1);
  RunFor(1000);  // the window passes: nothing more to rekey
  EXPECT_TRUE(NewRekeys(topic, join->ks_sign_public, &seen).empty());

  for (const auto& p : parts) {
    ASSERT_TRUE(keys0->Apply(p, 0).ok());
    ASSERT_TRUE(keys1->Apply(p, 0).ok());
  }
  auto joined = path_of(*n[3]);
  ASSERT_TRUE(joined.has_value());
  EXPECT_EQ(joined->key_version, v0 + 1);
  auto keys3 =
      group::GroupMemberKeys::FromPath(*GroupPath::Parse(joined->path.span()));
  ASSERT_TRUE(keys3.ok());
  EXPECT_EQ(keys0->epoch(), v0 + 1);
  EXPECT_TRUE(keys0->CurrentDataKeys().Equals(keys3->CurrentDataKeys()));
  EXPECT_FALSE(keys1->CurrentDataKeys().Equals(keys3->CurrentDataKeys()));
  auto listed = ks_->ListGroups(0).groups.at(0).members;
  EXPECT_EQ(listed.size(), 2u);
}

// With a window of 0 every request is its own rekey.
TEST_F(GroupKsScaleTest, WithoutAWindowAJoinRekeysAtOnce) {
  ks_options_.group_batch_ms = 0;
  RestartKsWithGroups();
  KedNode& a = AddNode();
  KedNode& b = AddNode();
  auto created = ks_->CreateGroup(
      AcGroupCreateReq{"g", GroupMode::kGroupKey, 0, {a.n_id}});
  ASSERT_EQ(created.status, 0) << created.message;
  auto added = ks_->ChangeGroupMembers(AcGroupMembersReq{"g", 1, {b.n_id}});
  ASSERT_EQ(added.status, 0) << added.message;
  EXPECT_EQ(added.key_version, created.key_version + 1);
}

}  // namespace
}  // namespace kgr::testing
