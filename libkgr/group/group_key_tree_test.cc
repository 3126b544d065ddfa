#include "group/group_key_tree.h"

#include <gtest/gtest.h>

#include "group/member_keys.h"

namespace kgr::group {
namespace {

GroupKeyTree TreeWith(KeySource* keys, uint32_t n, uint32_t group = 7) {
  GroupKeyTree tree(group, keys);
  for (uint32_t m = 1; m <= n; ++m) EXPECT_TRUE(tree.StageJoin(m).ok());
  EXPECT_TRUE(tree.Commit().ok());
  return tree;
}

bool SameKeys(const SymmetricKeys& a, const SymmetricKeys& b) {
  return a.valid() && b.valid() && a.Equals(b);
}

TEST(GroupKeyTreeTest, JoinsGiveEveryMemberTheSameGroupKey) {
  SeededKeySource keys(1);
  GroupKeyTree tree = TreeWith(&keys, 10);
  EXPECT_EQ(tree.size(), 10u);
  EXPECT_EQ(tree.epoch(), 1u);
  EXPECT_EQ(tree.depth(), 2);  // 16 slots for 10 members
  auto data = tree.DataKeys();
  ASSERT_TRUE(data.ok());
  for (uint32_t m = 1; m <= 10; ++m) {
    auto path = tree.PathOf(m);
    ASSERT_TRUE(path.ok());
    EXPECT_EQ(path->keys.size(), 3u);
    auto member = GroupMemberKeys::FromPath(std::move(*path));
    ASSERT_TRUE(member.ok());
    EXPECT_TRUE(SameKeys(member->CurrentDataKeys(), *data)) << m;
  }
}

TEST(GroupKeyTreeTest, OneLeaveCostsFourWrapsPerLevelButOne) {
  SeededKeySource keys(2);
  GroupKeyTree tree = TreeWith(&keys, 1000);
  ASSERT_EQ(tree.depth(), 5);  // 1024 slots
  ASSERT_TRUE(tree.StageLeave(500).ok());
  auto rekey = tree.Commit();
  ASSERT_TRUE(rekey.ok());
  EXPECT_EQ(rekey->entries.size(), 4u * 5 - 1);
  EXPECT_EQ(rekey->epoch, 2u);
  EXPECT_FALSE(tree.Contains(500));
  EXPECT_EQ(tree.PathOf(500).status().code(), StatusCode::kNotFound);
}

TEST(GroupKeyTreeTest, RefusesDuplicatesAndStrangers) {
  SeededKeySource keys(3);
  GroupKeyTree tree = TreeWith(&keys, 3);
  EXPECT_EQ(tree.StageJoin(2).code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(tree.StageLeave(9).code(), StatusCode::kNotFound);
  EXPECT_EQ(tree.StageJoin(0).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(tree.Commit().status().code(), StatusCode::kFailedPrecondition);
}

TEST(GroupKeyTreeTest, GrowsByANewRootAndKeepsPositions) {
  SeededKeySource keys(4);
  GroupKeyTree tree = TreeWith(&keys, 4);
  EXPECT_EQ(tree.depth(), 1);
  auto before = tree.PathOf(3);
  ASSERT_TRUE(before.ok());
  ASSERT_TRUE(tree.StageJoin(5).ok());
  ASSERT_TRUE(tree.Commit().ok());
  EXPECT_EQ(tree.depth(), 2);
  auto after = tree.PathOf(3);
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->leaf_position, before->leaf_position);
  // The old root is now (1, 0), unchanged by a join in another subtree.
  EXPECT_TRUE(after->keys[1].secret.Equals(before->keys[1].secret));
}

TEST(GroupKeyTreeTest, SerializationRoundTripsAndIsDeterministic) {
  SeededKeySource a(5), b(5);
  GroupKeyTree t1 = TreeWith(&a, 50);
  GroupKeyTree t2 = TreeWith(&b, 50);
  for (uint32_t m : {3u, 17u, 40u}) {
    ASSERT_TRUE(t1.StageLeave(m).ok());
    ASSERT_TRUE(t2.StageLeave(m).ok());
  }
  ASSERT_TRUE(t1.Commit().ok());
  ASSERT_TRUE(t2.Commit().ok());
  auto s1 = t1.Serialize();
  auto s2 = t2.Serialize();
  ASSERT_TRUE(s1.ok() && s2.ok());
  EXPECT_TRUE(s1->Equals(*s2));
  auto loaded = GroupKeyTree::Deserialize(s1->span(), &a);
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  EXPECT_EQ(loaded->Members(), t1.Members());
  EXPECT_EQ(loaded->epoch(), t1.epoch());
  auto again = loaded->Serialize();
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->Equals(*s1));
  // Positions freed by the leaves are reused after loading.
  ASSERT_TRUE(loaded->StageJoin(99).ok());
  ASSERT_TRUE(loaded->Commit().ok());
  EXPECT_EQ(loaded->PathOf(99)->leaf_position, 2u);  // member 3's slot
}

TEST(GroupKeyTreeTest, DeserializeRefusesDamage) {
  SeededKeySource keys(6);
  GroupKeyTree tree = TreeWith(&keys, 20);
  auto s = tree.Serialize();
  ASSERT_TRUE(s.ok());
  Bytes bytes(s->span().begin(), s->span().end());
  for (size_t cut : {size_t{0}, size_t{5}, bytes.size() - 1}) {
    EXPECT_FALSE(GroupKeyTree::Deserialize(
                     std::span<const uint8_t>(bytes).first(cut), &keys)
                     .ok());
  }
  Bytes longer = bytes;
  longer.push_back(0);
  EXPECT_FALSE(GroupKeyTree::Deserialize(longer, &keys).ok());
  Bytes huge = bytes;
  huge[10] = 0xff;  // slots: beyond the leaves of the tree
  EXPECT_FALSE(GroupKeyTree::Deserialize(huge, &keys).ok());
  WipeVector(bytes);
  WipeVector(longer);
  WipeVector(huge);
}

TEST(GroupKeyTreeTest, StagedChangesBlockPathsAndSerialization) {
  SeededKeySource keys(7);
  GroupKeyTree tree = TreeWith(&keys, 5);
  ASSERT_TRUE(tree.StageJoin(6).ok());
  EXPECT_EQ(tree.PathOf(1).status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(tree.Serialize().status().code(), StatusCode::kFailedPrecondition);
  ASSERT_TRUE(tree.Commit().ok());
  EXPECT_TRUE(tree.PathOf(6).ok());
}

TEST(GroupKeyTreeTest, RefreshChangesOnlyTheRoot) {
  SeededKeySource keys(8);
  GroupKeyTree tree = TreeWith(&keys, 16);
  auto before = tree.PathOf(1);
  tree.StageRefresh();
  auto rekey = tree.Commit();
  ASSERT_TRUE(rekey.ok());
  EXPECT_EQ(rekey->entries.size(), 4u);
  auto after = tree.PathOf(1);
  EXPECT_TRUE(after->keys[1].secret.Equals(before->keys[1].secret));
  EXPECT_FALSE(after->keys[2].secret.Equals(before->keys[2].secret));
}

TEST(GroupKeyTreeTest, EmptyingTheGroupLeavesNoKey) {
  SeededKeySource keys(9);
  GroupKeyTree tree = TreeWith(&keys, 2);
  ASSERT_TRUE(tree.StageLeave(1).ok());
  ASSERT_TRUE(tree.StageLeave(2).ok());
  auto rekey = tree.Commit();
  ASSERT_TRUE(rekey.ok());
  EXPECT_TRUE(rekey->entries.empty());
  EXPECT_EQ(tree.DataKeys().status().code(), StatusCode::kFailedPrecondition);
  ASSERT_TRUE(tree.StageJoin(3).ok());
  ASSERT_TRUE(tree.Commit().ok());
  EXPECT_TRUE(tree.DataKeys().ok());
}

}  // namespace
}  // namespace kgr::group
