// The KS side of groups on the KED fixture (fakes): kgr-ac group create,
// add, remove, list, delete; refusals that leave nothing behind; revocation
// removing a node from every group; groups surviving a KS restart.
#include <gtest/gtest.h>

#include "kgr/group_frames.h"
#include "node/ked_fixture.h"

namespace kgr::testing {
namespace {

class GroupKsTest : public KedFixture {
 protected:
  void SetUp() override {
    group_keys_ = *DeriveTestKeys();
    OpenGroups();
    KedFixture::SetUp();
  }
  static StatusOr<SymmetricKeys> DeriveTestKeys() {
    KGR_ASSIGN_OR_RETURN(SecretBytes enc, RandomSecret(32));
    KGR_ASSIGN_OR_RETURN(SecretBytes mac, RandomSecret(32));
    return SymmetricKeys(std::move(enc), std::move(mac));
  }
  void OpenGroups() {
    ks_options_.groups = nullptr;
    groups_.reset();
    auto g = GroupStore::Open(fs_, "/ks/groups", group_keys_.Clone(), 7);
    ASSERT_TRUE(g.ok()) << g.status().ToString();
    groups_ = std::move(*g);
    ks_options_.groups = groups_.get();
  }
  // The KS and its groups file closed and opened again.
  void RestartKsWithGroups() {
    ks_options_.groups = nullptr;
    RestartKs();  // lets go of the store
    OpenGroups();
    RestartKs();
  }

  KedNode& Registered() {
    KedNode& n = AddNode();
    EXPECT_TRUE(Register(n).ok());
    return n;
  }
  AcGroupCreateAns Create(const std::string& name,
                          std::vector<uint32_t> members,
                          GroupMode mode = GroupMode::kGroupKey) {
    return ks_->CreateGroup(AcGroupCreateReq{name, mode, 0, members});
  }
  AcGroupMembersAns Change(const std::string& name, bool add,
                           std::vector<uint32_t> members) {
    return ks_->ChangeGroupMembers(
        AcGroupMembersReq{name, static_cast<uint8_t>(add), members});
  }
  std::vector<uint32_t> MembersOf(const std::string& name) {
    for (const auto& g : ks_->ListGroups(0).groups) {
      if (g.name == name) return g.members;
    }
    return {};
  }

  RecordKeys group_keys_;
  std::unique_ptr<GroupStore> groups_;
};

TEST_F(GroupKsTest, CreateListDelete) {
  KedNode& a = Registered();
  KedNode& b = Registered();
  auto created = Create("lights", {b.n_id, a.n_id}, GroupMode::kSenderAuth);
  ASSERT_EQ(created.status, 0) << created.message;
  EXPECT_NE(created.group_id, 0u);
  auto list = ks_->ListGroups(0);
  ASSERT_EQ(list.groups.size(), 1u);
  EXPECT_EQ(list.groups[0].name, "lights");
  EXPECT_EQ(list.groups[0].group_id, created.group_id);
  EXPECT_EQ(list.groups[0].mode, GroupMode::kSenderAuth);
  std::vector<uint32_t> sorted = {std::min(a.n_id, b.n_id),
                                  std::max(a.n_id, b.n_id)};
  EXPECT_EQ(list.groups[0].members, sorted);

  auto dup = Create("lights", {a.n_id});
  EXPECT_EQ(dup.status, static_cast<uint8_t>(StatusCode::kAlreadyExists));
  EXPECT_NE(dup.message.find("exists already"), std::string::npos);

  auto del = ks_->DeleteGroup(AcGroupDeleteReq{"lights"});
  EXPECT_EQ(del.status, 0) << del.message;
  EXPECT_TRUE(ks_->ListGroups(0).groups.empty());
  auto again = ks_->DeleteGroup(AcGroupDeleteReq{"lights"});
  EXPECT_EQ(again.status, static_cast<uint8_t>(StatusCode::kNotFound));
  EXPECT_EQ(again.message, "unknown group 'lights'");
}

TEST_F(GroupKsTest, RefusalsLeaveNothingBehind) {
  KedNode& a = Registered();
  auto unknown = Create("g", {a.n_id, 0x12345678});
  EXPECT_EQ(unknown.status, static_cast<uint8_t>(StatusCode::kNotFound));
  EXPECT_EQ(unknown.message, "node 12345678 is not authorized");
  EXPECT_TRUE(ks_->ListGroups(0).groups.empty());
  EXPECT_EQ(groups_->size(), 0u);

  auto twice = Create("g", {a.n_id, a.n_id});
  EXPECT_EQ(twice.status, static_cast<uint8_t>(StatusCode::kInvalidArgument));
  EXPECT_EQ(groups_->size(), 0u);

  ASSERT_EQ(Create("g", {a.n_id}).status, 0);
  const uint32_t version = ks_->ListGroups(0).groups[0].key_version;
  auto member = Change("g", true, {a.n_id});
  EXPECT_EQ(member.status, static_cast<uint8_t>(StatusCode::kAlreadyExists));
  KedNode& b = Registered();
  auto not_member = Change("g", false, {b.n_id});
  EXPECT_EQ(not_member.status, static_cast<uint8_t>(StatusCode::kNotFound));
  EXPECT_NE(not_member.message.find("is not a member of 'g'"),
            std::string::npos);
  // Several members, one bad: none is added.
  auto partly = Change("g", true, {b.n_id, 0x0BADBAD0});
  EXPECT_EQ(partly.status, static_cast<uint8_t>(StatusCode::kNotFound));
  EXPECT_EQ(MembersOf("g"), std::vector<uint32_t>{a.n_id});
  EXPECT_EQ(ks_->ListGroups(0).groups[0].key_version, version);
  auto no_group = Change("nope", true, {b.n_id});
  EXPECT_EQ(no_group.message, "unknown group 'nope'");
}

TEST_F(GroupKsTest, RemoveIsImmediateAndRekeys) {
  KedNode& a = Registered();
  KedNode& b = Registered();
  ASSERT_EQ(Create("g", {a.n_id, b.n_id}).status, 0);
  const uint32_t v0 = ks_->ListGroups(0).groups[0].key_version;
  auto removed = Change("g", false, {b.n_id});
  ASSERT_EQ(removed.status, 0) << removed.message;
  EXPECT_GT(removed.key_version, v0);  // no batch window for a removal
  EXPECT_EQ(MembersOf("g"), std::vector<uint32_t>{a.n_id});
}

TEST_F(GroupKsTest, JoinsInTheWindowMakeOneRekey) {
  KedNode& a = Registered();
  KedNode& b = Registered();
  KedNode& c = Registered();
  ASSERT_EQ(Create("g", {a.n_id}).status, 0);
  const uint32_t v0 = ks_->ListGroups(0).groups[0].key_version;
  ASSERT_EQ(Change("g", true, {b.n_id}).status, 0);
  ASSERT_EQ(Change("g", true, {c.n_id}).status, 0);
  EXPECT_EQ(ks_->ListGroups(0).groups[0].key_version, v0);  // window open
  RunFor(1000);
  EXPECT_EQ(ks_->ListGroups(0).groups[0].key_version, v0 + 1);
  EXPECT_EQ(MembersOf("g").size(), 3u);
}

TEST_F(GroupKsTest, RevocationRemovesTheNodeFromEveryGroup) {
  KedNode& a = Registered();
  KedNode& b = Registered();
  ASSERT_EQ(Create("one", {a.n_id, b.n_id}).status, 0);
  ASSERT_EQ(Create("two", {b.n_id}).status, 0);
  ASSERT_EQ(Create("three", {a.n_id}).status, 0);
  int notified = 0;
  ASSERT_TRUE(ks_->RevokeNode(b.n_id, &notified).ok());
  EXPECT_EQ(MembersOf("one"), std::vector<uint32_t>{a.n_id});
  EXPECT_TRUE(MembersOf("two").empty());
  EXPECT_EQ(MembersOf("three"), std::vector<uint32_t>{a.n_id});
  // And a revoked node cannot be added again.
  auto back = Change("one", true, {b.n_id});
  EXPECT_EQ(back.status, static_cast<uint8_t>(StatusCode::kFailedPrecondition));
  EXPECT_NE(back.message.find("is revoked"), std::string::npos);
}

TEST_F(GroupKsTest, GroupsSurviveAKsRestart) {
  KedNode& a = Registered();
  auto created = Create("kept", {a.n_id}, GroupMode::kSenderAuth);
  ASSERT_EQ(created.status, 0);
  const auto before = ks_->ListGroups(0).groups.at(0);
  RestartKsWithGroups();
  auto after = ks_->ListGroups(0);
  ASSERT_EQ(after.groups.size(), 1u);
  EXPECT_EQ(after.groups[0].group_id, created.group_id);
  EXPECT_EQ(after.groups[0].name, "kept");
  EXPECT_EQ(after.groups[0].members, before.members);
  EXPECT_EQ(after.groups[0].key_version, before.key_version);
  EXPECT_EQ(after.groups[0].mode, GroupMode::kSenderAuth);
}

TEST_F(GroupKsTest, WithoutAStoreEveryGroupRequestIsRefused) {
  ks_options_.groups = nullptr;
  RestartKs();
  auto r = Create("g", {});
  EXPECT_EQ(r.status, static_cast<uint8_t>(StatusCode::kFailedPrecondition));
  EXPECT_EQ(r.message, "this key server keeps no groups");
}

}  // namespace
}  // namespace kgr::testing
