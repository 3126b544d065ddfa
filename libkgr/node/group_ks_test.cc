// The KS side of groups on the KED fixture (fakes): kgr-ac group create,
// add, remove, list, delete; refusals that leave nothing behind; revocation
// removing a node from every group; groups surviving a KS restart.
#include <gtest/gtest.h>

#include "group/member_keys.h"
#include "kgr/group_frames.h"
#include "kgr/group_rekey.h"
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
    auto g = GroupDescStore::Open(fs_, "/ks/groups", group_keys_.Clone(), 7);
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

  // The group_join / group_sync_ans frames the KS sent `n` (opened with its
  // NKSK as the KS holds it), oldest first.
  template <typename Body>
  std::vector<Body> PathsTo(const KedNode& n) {
    std::vector<Body> out;
    auto d = nodes_->Get(n.n_id);
    EXPECT_TRUE(d.ok());
    if (!d.ok()) return out;
    const std::string topic =
        TopicName("kgr", NodeIdentity(n.n_id), *d->topic2);
    for (const auto& m : broker_.published()) {
      if (m.topic != topic) continue;
      FrameHeader h;
      auto body = OpenBody<Body>(m.payload, d->nksk, &h);
      if (body.ok()) out.push_back(std::move(*body));
    }
    return out;
  }
  // Every group_rekey part published on the group's rekey topic.
  std::vector<GroupRekeyPart> Rekeys(const GroupJoin& join) {
    std::vector<GroupRekeyPart> out;
    const std::string topic =
        GroupTopicName("kgr", join.group_id, true, join.rekey_topic);
    for (const auto& m : broker_.published()) {
      if (m.topic != topic) continue;
      FrameHeader h;
      auto part = OpenGroupRekey(m.payload, join.ks_sign_public, &h);
      EXPECT_TRUE(part.ok()) << part.status().ToString();
      if (part.ok()) out.push_back(std::move(*part));
    }
    return out;
  }
  template <typename Body>
  static group::GroupMemberKeys KeysOf(const Body& join) {
    auto path = GroupPath::Parse(join.path.span());
    EXPECT_TRUE(path.ok()) << path.status().ToString();
    auto keys = group::GroupMemberKeys::FromPath(std::move(*path));
    EXPECT_TRUE(keys.ok()) << keys.status().ToString();
    return std::move(*keys);
  }
  static bool SameKeys(const SymmetricKeys& a, const SymmetricKeys& b) {
    return a.RawEncKeyBytes().Equals(b.RawEncKeyBytes()) &&
           a.RawMacKeyBytes().Equals(b.RawMacKeyBytes());
  }

  RecordKeys group_keys_;
  std::unique_ptr<GroupDescStore> groups_;
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
  EXPECT_EQ(r.message,
            "this key server keeps no groups (a KS cluster or a KS on etcd "
            "serves no groups yet: docs/cluster.md)");
}

TEST_F(GroupKsTest, MembersGetTheirPathsAndTheSameGroupKey) {
  KedNode& a = Registered();
  KedNode& b = Registered();
  auto created = Create("g", {a.n_id, b.n_id});
  ASSERT_EQ(created.status, 0) << created.message;
  auto ja = PathsTo<GroupJoin>(a), jb = PathsTo<GroupJoin>(b);
  ASSERT_EQ(ja.size(), 1u);
  ASSERT_EQ(jb.size(), 1u);
  EXPECT_EQ(ja[0].group_id, created.group_id);
  EXPECT_EQ(ja[0].key_version, created.key_version);
  EXPECT_EQ(ja[0].members.size(), 2u);
  EXPECT_EQ(ja[0].rekey_topic, jb[0].rekey_topic);
  auto ka = KeysOf(ja[0]), kb = KeysOf(jb[0]);
  EXPECT_EQ(ka.epoch(), created.key_version);
  EXPECT_TRUE(SameKeys(ka.CurrentDataKeys(), kb.CurrentDataKeys()));
  // The creation's rekey went out once, signed by the group's KS key.
  EXPECT_EQ(Rekeys(ja[0]).size(), 1u);
}

TEST_F(GroupKsTest, ARemovedMemberCannotFollowTheNextRekey) {
  KedNode& a = Registered();
  KedNode& b = Registered();
  KedNode& c = Registered();
  ASSERT_EQ(Create("g", {a.n_id, b.n_id, c.n_id}).status, 0);
  auto ka = KeysOf(PathsTo<GroupJoin>(a).at(0));
  auto kc = KeysOf(PathsTo<GroupJoin>(c).at(0));
  const GroupJoin join = std::move(PathsTo<GroupJoin>(a).at(0));
  const size_t before = Rekeys(join).size();
  ASSERT_EQ(Change("g", false, {c.n_id}).status, 0);
  auto rekeys = Rekeys(join);
  ASSERT_EQ(rekeys.size(), before + 1);  // one rekey message, published once
  // About 2 log2(n) wraps, not one per member.
  EXPECT_LE(rekeys.back().entries.size(), 8u);
  auto applied = ka.Apply(rekeys.back(), 0);
  ASSERT_TRUE(applied.ok());
  EXPECT_EQ(*applied, group::RekeyOutcome::kApplied);
  auto refused = kc.Apply(rekeys.back(), 0);
  ASSERT_TRUE(refused.ok());
  EXPECT_EQ(*refused, group::RekeyOutcome::kCannotOpen);
  EXPECT_FALSE(SameKeys(ka.CurrentDataKeys(), kc.CurrentDataKeys()));
  // And it was told to forget the group (a group_join without a path).
  auto gone = PathsTo<GroupJoin>(c);
  ASSERT_EQ(gone.size(), 2u);
  EXPECT_TRUE(gone.back().path.empty());
}

TEST_F(GroupKsTest, AJoinerCannotReadEarlierEpochs) {
  KedNode& a = Registered();
  KedNode& b = Registered();
  ASSERT_EQ(Create("g", {a.n_id}).status, 0);
  auto ka = KeysOf(PathsTo<GroupJoin>(a).at(0));
  ASSERT_EQ(Change("g", true, {b.n_id}).status, 0);
  RunFor(1000);
  auto jb = PathsTo<GroupJoin>(b);
  ASSERT_EQ(jb.size(), 1u);
  auto kb = KeysOf(jb[0]);
  EXPECT_EQ(kb.epoch(), ka.epoch() + 1);
  EXPECT_EQ(kb.DataKeysFor(ka.epoch(), 0), nullptr);
  ASSERT_EQ(*ka.Apply(Rekeys(jb[0]).back(), 0), group::RekeyOutcome::kApplied);
  EXPECT_TRUE(SameKeys(ka.CurrentDataKeys(), kb.CurrentDataKeys()));
}

// A member that missed rekeys asks for its path (group_sync_req on TOPIC1,
// under its NKSK) and gets the current one, with its signing key recorded;
// a non-member gets a group_sync_ans without a path.
TEST_F(GroupKsTest, SyncGivesAMemberItsPathAndANonMemberNothing) {
  KedNode& a = Registered();
  KedNode& b = Registered();
  KedNode& outsider = Registered();
  auto created = Create("g", {a.n_id, b.n_id}, GroupMode::kSenderAuth);
  ASSERT_EQ(created.status, 0);
  ASSERT_EQ(Change("g", false, {b.n_id}).status, 0);
  ASSERT_EQ(Change("g", true, {b.n_id}).status, 0);
  RunFor(1000);
  auto ask = [&](KedNode& n) {
    auto d = nodes_->Get(n.n_id);
    ASSERT_TRUE(d.ok());
    GroupSyncReq req;
    req.group_id = created.group_id;
    req.sign_public.fill(0x5A);
    FrameHeader h;
    h.sender = n.n_id;
    h.key_version = d->nksk_version;
    h.counter = clock_.NowUnixMicros() + 1'000'000;
    h.request_id = 77;
    auto f = SealBody(h, req, d->nksk);
    ASSERT_TRUE(f.ok());
    ks_->HandleMessage(ks_->topic1(), *f);
  };
  ask(a);
  ask(outsider);
  auto sa = PathsTo<GroupSyncAns>(a);
  ASSERT_EQ(sa.size(), 1u);
  auto ka = KeysOf(sa[0]);
  auto list = ks_->ListGroups(0);
  EXPECT_EQ(ka.epoch(), list.groups.at(0).key_version);
  auto so = PathsTo<GroupSyncAns>(outsider);
  ASSERT_EQ(so.size(), 1u);
  EXPECT_TRUE(so[0].path.empty());
  // The member's Ed25519 key is now in the membership others receive.
  // (in the record of the key tree's first leaf slots, a's slot among them)
  auto g = groups_->Get(
      GroupRecordKey(GroupDesc::Kind::kMemberPiece, created.group_id));
  ASSERT_TRUE(g.ok());
  bool found = false;
  for (const auto& m : g->members) {
    if (m.n_id == a.n_id) found = m.sign_public[0] == 0x5A;
  }
  EXPECT_TRUE(found);
}

TEST_F(GroupKsTest, LifetimePolicyRenewsTheGroupKey) {
  KedNode& a = Registered();
  ASSERT_EQ(
      ks_->CreateGroup(AcGroupCreateReq{"g", GroupMode::kGroupKey, 5, {a.n_id}})
          .status,
      0);
  const uint32_t v0 = ks_->ListGroups(0).groups[0].key_version;
  RunFor(3000);
  EXPECT_EQ(ks_->ListGroups(0).groups[0].key_version, v0);
  RunFor(4000);
  EXPECT_EQ(ks_->ListGroups(0).groups[0].key_version, v0 + 1);
}

}  // namespace
}  // namespace kgr::testing
