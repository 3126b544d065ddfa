#include "group/member_keys.h"

#include <gtest/gtest.h>

#include <map>
#include <random>

#include "group/group_key_tree.h"

namespace kgr::group {
namespace {

constexpr uint32_t kMemberGroup = 42;

// The rekey's parts as members get them: sealed, signed and opened again.
std::vector<GroupRekeyPart> Publish(const GroupRekey& rekey) {
  static const Ed25519KeyPair* ks = new Ed25519KeyPair(*GenerateEd25519());
  uint64_t counter = 1;
  auto frames =
      SealGroupRekey(rekey, 1, ks->private_key, [&] { return counter++; });
  EXPECT_TRUE(frames.ok());
  std::vector<GroupRekeyPart> parts;
  for (const Bytes& f : *frames) {
    FrameHeader h;
    auto part = OpenGroupRekey(f, ks->public_key, &h);
    EXPECT_TRUE(part.ok()) << part.status().ToString();
    parts.push_back(*std::move(part));
  }
  return parts;
}

GroupMemberKeys MemberOf(const GroupKeyTree& tree, uint32_t m) {
  auto path = tree.PathOf(m);
  EXPECT_TRUE(path.ok());
  auto keys = GroupMemberKeys::FromPath(*std::move(path));
  EXPECT_TRUE(keys.ok());
  return *std::move(keys);
}

RekeyOutcome ApplyAll(GroupMemberKeys& member,
                      const std::vector<GroupRekeyPart>& parts,
                      uint64_t now = 0) {
  RekeyOutcome last = RekeyOutcome::kWaitingParts;
  for (const auto& p : parts) {
    auto r = member.Apply(p, now);
    EXPECT_TRUE(r.ok());
    last = *r;
  }
  return last;
}

bool Holds(const GroupMemberKeys& m, const GroupKeyTree& tree) {
  auto data = tree.DataKeys();
  return data.ok() && m.epoch() == tree.epoch() &&
         m.CurrentDataKeys().Equals(*data);
}

TEST(GroupMemberKeysTest, MembersFollowALeaveAndTheLeaverCannot) {
  SeededKeySource keys(11);
  GroupKeyTree tree(kMemberGroup, &keys);
  for (uint32_t m = 1; m <= 100; ++m) ASSERT_TRUE(tree.StageJoin(m).ok());
  ASSERT_TRUE(tree.Commit().ok());
  std::map<uint32_t, GroupMemberKeys> members;
  for (uint32_t m = 1; m <= 100; ++m) members.emplace(m, MemberOf(tree, m));
  ASSERT_TRUE(tree.StageLeave(37).ok());
  auto parts = Publish(*tree.Commit());
  for (auto& [m, keys] : members) {
    RekeyOutcome r = ApplyAll(keys, parts);
    if (m == 37) {
      EXPECT_EQ(r, RekeyOutcome::kCannotOpen);
      EXPECT_EQ(keys.epoch(), 1u);  // unchanged
    } else {
      EXPECT_EQ(r, RekeyOutcome::kApplied) << m;
      EXPECT_TRUE(Holds(keys, tree)) << m;
    }
  }
}

TEST(GroupMemberKeysTest, DuplicatesGapsAndOtherGroups) {
  SeededKeySource keys(12);
  GroupKeyTree tree(kMemberGroup, &keys);
  for (uint32_t m = 1; m <= 9; ++m) ASSERT_TRUE(tree.StageJoin(m).ok());
  ASSERT_TRUE(tree.Commit().ok());
  GroupMemberKeys member = MemberOf(tree, 1);
  ASSERT_TRUE(tree.StageLeave(2).ok());
  auto first = Publish(*tree.Commit());
  ASSERT_TRUE(tree.StageLeave(3).ok());
  auto second = Publish(*tree.Commit());
  EXPECT_EQ(ApplyAll(member, second), RekeyOutcome::kMissedRekey);
  EXPECT_EQ(ApplyAll(member, first), RekeyOutcome::kApplied);
  EXPECT_EQ(ApplyAll(member, first), RekeyOutcome::kAlreadyHave);
  EXPECT_EQ(ApplyAll(member, second), RekeyOutcome::kApplied);
  EXPECT_TRUE(Holds(member, tree));
  GroupRekeyPart other = second[0];
  other.group_id = kMemberGroup + 1;
  EXPECT_FALSE(member.Apply(other, 0).ok());
}

TEST(GroupMemberKeysTest, PreviousKeyOnlyWithinTheOverlap) {
  SeededKeySource keys(13);
  GroupKeyTree tree(kMemberGroup, &keys);
  for (uint32_t m = 1; m <= 5; ++m) ASSERT_TRUE(tree.StageJoin(m).ok());
  ASSERT_TRUE(tree.Commit().ok());
  auto member = GroupMemberKeys::FromPath(*tree.PathOf(1), 1000);
  ASSERT_TRUE(member.ok());
  SymmetricKeys old = member->CurrentDataKeys().Clone();
  for (int round = 0; round < 2; ++round) {
    ASSERT_TRUE(tree.StageLeave(2 + round).ok());
    EXPECT_EQ(ApplyAll(*member, Publish(*tree.Commit()), 5000 * round),
              RekeyOutcome::kApplied);
  }
  // Epoch 3 now; epoch 2 accepted until 5000 + 1000, epoch 1 never.
  EXPECT_NE(member->DataKeysFor(3, 5500), nullptr);
  EXPECT_NE(member->DataKeysFor(2, 5999), nullptr);
  EXPECT_EQ(member->DataKeysFor(2, 6000), nullptr);
  EXPECT_EQ(member->DataKeysFor(1, 5001), nullptr);
  EXPECT_EQ(member->DataKeysFor(4, 5001), nullptr);
  EXPECT_FALSE(member->DataKeysFor(3, 0)->Equals(old));
}

TEST(GroupMemberKeysTest, ARekeyInManyPartsAppliesWhenAllAreIn) {
  SeededKeySource keys(14);
  GroupKeyTree tree(kMemberGroup, &keys);
  for (uint32_t m = 1; m <= 5000; ++m) ASSERT_TRUE(tree.StageJoin(m).ok());
  ASSERT_TRUE(tree.Commit().ok());
  GroupMemberKeys member = MemberOf(tree, 4000);
  for (uint32_t m = 1; m <= 5000; m += 20) ASSERT_TRUE(tree.StageLeave(m).ok());
  auto parts = Publish(*tree.Commit());
  ASSERT_GT(parts.size(), 1u);
  std::reverse(parts.begin(), parts.end());
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    EXPECT_EQ(*member.Apply(parts[i], 0), RekeyOutcome::kWaitingParts);
    EXPECT_EQ(*member.Apply(parts[i], 0), RekeyOutcome::kWaitingParts);
  }
  EXPECT_EQ(*member.Apply(parts.back(), 0), RekeyOutcome::kApplied);
  EXPECT_TRUE(Holds(member, tree));
}

TEST(GroupMemberKeysTest, MembersFollowTheTreeWhenItGrows) {
  SeededKeySource keys(15);
  GroupKeyTree tree(kMemberGroup, &keys);
  for (uint32_t m = 1; m <= 4; ++m) ASSERT_TRUE(tree.StageJoin(m).ok());
  ASSERT_TRUE(tree.Commit().ok());
  GroupMemberKeys member = MemberOf(tree, 4);
  for (uint32_t m = 5; m <= 17; ++m) ASSERT_TRUE(tree.StageJoin(m).ok());
  EXPECT_EQ(ApplyAll(member, Publish(*tree.Commit())), RekeyOutcome::kApplied);
  EXPECT_EQ(member.depth(), 3);
  EXPECT_TRUE(Holds(member, tree));
}

TEST(GroupMemberKeysTest, ReplaceTakesANewerPathOnly) {
  SeededKeySource keys(16);
  GroupKeyTree tree(kMemberGroup, &keys);
  for (uint32_t m = 1; m <= 8; ++m) ASSERT_TRUE(tree.StageJoin(m).ok());
  ASSERT_TRUE(tree.Commit().ok());
  GroupMemberKeys member = MemberOf(tree, 5);
  GroupPath old = tree.PathOf(5)->Clone();
  for (uint32_t m : {1u, 2u, 3u}) {
    ASSERT_TRUE(tree.StageLeave(m).ok());
    ASSERT_TRUE(tree.Commit().ok());
  }
  ASSERT_TRUE(member.Replace(*tree.PathOf(5), 10).ok());
  EXPECT_TRUE(Holds(member, tree));
  EXPECT_EQ(member.Replace(std::move(old), 20).code(),
            StatusCode::kFailedPrecondition);
  EXPECT_TRUE(Holds(member, tree));
}

}  // namespace
}  // namespace kgr::group
