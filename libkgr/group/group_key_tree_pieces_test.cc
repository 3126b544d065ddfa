// GroupKeyTree in pieces: a tree stored as pieces and updated with the
// pieces each commit changed is the tree itself; a leave changes one piece
// per level.
#include <gtest/gtest.h>

#include <map>

#include "group/group_key_tree.h"

namespace kgr::group {
namespace {

using Pieces = std::map<GroupKeyTree::PieceId, SecretBytes>;

void Store(const GroupKeyTree& tree,
           const std::vector<GroupKeyTree::PieceId>& ids, Pieces* pieces) {
  for (const auto& id : ids) {
    auto p = tree.EncodePiece(id);
    ASSERT_TRUE(p.ok()) << p.status().ToString();
    (*pieces)[id] = std::move(*p);
  }
}

StatusOr<GroupKeyTree> Load(const GroupKeyTree& like, const Pieces& pieces,
                            KeySource* keys) {
  std::vector<std::pair<GroupKeyTree::PieceId, SecretBytes>> list;
  for (const auto& [id, bytes] : pieces) list.emplace_back(id, bytes.Clone());
  return GroupKeyTree::FromPieces(like.group_id(), like.shape(), list, keys);
}

void ExpectSameTree(const GroupKeyTree& a, const GroupKeyTree& b) {
  ASSERT_EQ(a.Members(), b.Members());
  EXPECT_EQ(a.epoch(), b.epoch());
  EXPECT_EQ(a.depth(), b.depth());
  auto sa = a.Serialize(), sb = b.Serialize();
  ASSERT_TRUE(sa.ok() && sb.ok());
  EXPECT_TRUE(sa->Equals(*sb));
}

TEST(GroupKeyTreePiecesTest, ChangedPiecesKeepTheStoredTreeExact) {
  SeededKeySource keys(11);
  GroupKeyTree tree(9, &keys);
  for (uint32_t m = 1; m <= 1000; ++m) ASSERT_TRUE(tree.StageJoin(m).ok());
  ASSERT_TRUE(tree.Commit().ok());
  Pieces stored;
  Store(tree, tree.ChangedPieces(), &stored);
  EXPECT_EQ(stored.size(), tree.AllPieces().size());
  auto loaded = Load(tree, stored, &keys);
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  ExpectSameTree(tree, *loaded);

  // One leave: one piece per level (depth 5 for 1,000 members: 6 pieces).
  ASSERT_TRUE(tree.StageLeave(500).ok());
  EXPECT_EQ(tree.StagedPieces().size(), size_t{tree.depth()} + 1);
  ASSERT_TRUE(tree.Commit().ok());
  EXPECT_EQ(tree.ChangedPieces().size(), size_t{tree.depth()} + 1);
  Store(tree, tree.ChangedPieces(), &stored);
  // A batch, a join into the freed slot, a growth beyond 4^5 slots.
  for (uint32_t m : {3u, 77u, 999u}) ASSERT_TRUE(tree.StageLeave(m).ok());
  for (uint32_t m = 2000; m < 2030; ++m) ASSERT_TRUE(tree.StageJoin(m).ok());
  ASSERT_TRUE(tree.Commit().ok());
  Store(tree, tree.ChangedPieces(), &stored);
  tree.StageRefresh();
  ASSERT_TRUE(tree.Commit().ok());
  Store(tree, tree.ChangedPieces(), &stored);
  loaded = Load(tree, stored, &keys);
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  ExpectSameTree(tree, *loaded);
  auto a = tree.DataKeys(), b = loaded->DataKeys();
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_TRUE(a->Equals(*b));
  // The loaded tree goes on like the original.
  ASSERT_TRUE(loaded->StageLeave(1).ok());
  EXPECT_TRUE(loaded->Commit().ok());
}

TEST(GroupKeyTreePiecesTest, GrowthWritesNoOldPiece) {
  SeededKeySource keys(12);
  GroupKeyTree tree(9, &keys);
  for (uint32_t m = 1; m <= 16; ++m) ASSERT_TRUE(tree.StageJoin(m).ok());
  ASSERT_TRUE(tree.Commit().ok());
  ASSERT_EQ(tree.depth(), 2);
  ASSERT_TRUE(tree.StageJoin(17).ok());  // 17 > 4^2: a new root
  ASSERT_TRUE(tree.Commit().ok());
  EXPECT_EQ(tree.depth(), 3);
  EXPECT_EQ(tree.ChangedPieces().size(), 4u);  // the new leaf's path
}

TEST(GroupKeyTreePiecesTest, BadPiecesAreRefused) {
  SeededKeySource keys(13);
  GroupKeyTree tree(9, &keys);
  for (uint32_t m = 1; m <= 70; ++m) ASSERT_TRUE(tree.StageJoin(m).ok());
  ASSERT_TRUE(tree.Commit().ok());
  Pieces stored;
  Store(tree, tree.AllPieces(), &stored);
  Pieces shorter;
  for (const auto& [id, b] : stored) shorter[id] = b.Clone();
  shorter[{0, 0}] = SecretBytes(39);
  auto bad = Load(tree, shorter, &keys);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(), "malformed group tree: piece size");
  Pieces beyond;
  for (const auto& [id, b] : stored) beyond[id] = b.Clone();
  beyond[{0, 5}] = stored[{0, 0}].Clone();
  EXPECT_FALSE(Load(tree, beyond, &keys).ok());
  // Member 1 at slot 0 and again in the second piece: a member twice.
  Pieces twice;
  for (const auto& [id, b] : stored) twice[id] = b.Clone();
  std::copy(stored[{0, 0}].span().begin(), stored[{0, 0}].span().begin() + 40,
            twice[{0, 1}].data());
  bad = Load(tree, twice, &keys);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(), "malformed group tree: a member twice");
}

}  // namespace
}  // namespace kgr::group
