// The logical key hierarchy of one group, on the KS (RFC 2627, Wong-Gouda-
// Lam key graphs): members at the leaves of a 4-ary tree, every member
// holds the secrets on its path from its leaf to the root, the root's
// secret gives the group data key (kgr/group_rekey.h has the derivations
// and the wire format; docs/protocol.md section 12, docs/architecture.md
// "Groups").
//
// Shape. Every leaf is at level 0 and the root at level `depth` (>= 1), so
// the tree has 4^depth leaf slots; a member keeps its leaf position for as
// long as it stays, a new member takes the lowest free position, and when
// every slot is taken the tree grows by one level (a new root above the
// old one, which keeps its name (depth - 1, 0)). The depth never shrinks.
// Nodes with no member below them hold no secret.
//
// Changes are staged, then committed together: Commit() makes ONE rekey
// for every join, leave and refresh staged since the last commit. It gives
// every node on the path of a joined or left leaf (the union of those
// paths, root included) a fresh secret and a new version, and wraps each
// under the KEK of each of its children that has members (the new KEK for
// a child that changed too). So:
//   * backward secrecy: a joiner's whole path is new, it never sees an
//     older secret;
//   * forward secrecy: every secret a leaver held is replaced, and no new
//     secret is wrapped under a key it holds;
//   * a single leave costs 4 * depth - 1 wraps, 4 * log4(n) = 2 * log2(n).
// Why 4-ary: the same wraps per leave as binary, half the path length
// (member storage and member CPU per rekey), and degree 4 is the optimum
// for the server's cost in Wong-Gouda-Lam and for batches (Li et al. 2001).
//
// A member's leaf secret is drawn by the KS at the join and is part of the
// member's path (PathOf); gks sends that path to the joiner under its NKSK.
//
// Cost: StageJoin/StageLeave O(depth); Commit O(wraps); PathOf O(depth).
// Memory: about 1.34 nodes per member slot, 40 bytes each (secret,
// version, member count) plus the member index.
//
// Not thread-safe; secrets are wiped when replaced or released.
#ifndef KGR_GROUP_GROUP_KEY_TREE_H_
#define KGR_GROUP_GROUP_KEY_TREE_H_

#include <compare>
#include <cstdint>
#include <memory>
#include <set>
#include <span>
#include <unordered_map>
#include <utility>
#include <vector>

#include "group/key_source.h"
#include "kgr/group_rekey.h"
#include "kgr/secret.h"
#include "kgr/status.h"

namespace kgr::group {

// Nodes per stored piece of a key tree (see GroupKeyTree::PieceId).
inline constexpr uint32_t kGroupTreePieceNodes = 64;

class GroupKeyTree {
 public:
  // An empty group at epoch 0, depth 1. `keys` must outlive the tree.
  GroupKeyTree(uint32_t group_id, KeySource* keys);
  GroupKeyTree(GroupKeyTree&&) noexcept;
  GroupKeyTree& operator=(GroupKeyTree&&) noexcept;
  ~GroupKeyTree();

  // Stages a join: `member` (non-zero, e.g. its N_ID) gets a leaf with a
  // fresh secret. ALREADY_EXISTS if it is a member (staged or not).
  Status StageJoin(uint32_t member);
  // Stages a leave (removal, revocation). NOT_FOUND if not a member.
  Status StageLeave(uint32_t member);
  // Stages a refresh of the group key alone (time-based renewal): the root
  // gets a new secret, wrapped under its children.
  void StageRefresh();
  bool HasStaged() const;

  // Applies everything staged: one rekey, epoch + 1. FAILED_PRECONDITION
  // when nothing is staged. On error (the key source failed) the tree is
  // unusable: reload it from its last serialization.
  StatusOr<GroupRekey> Commit();

  // The member's path at the current epoch. NOT_FOUND for a non-member,
  // FAILED_PRECONDITION while changes are staged.
  StatusOr<GroupPath> PathOf(uint32_t member) const;
  // The group data key of the current epoch (FAILED_PRECONDITION while
  // staged or when the group is empty).
  StatusOr<SymmetricKeys> DataKeys() const;

  uint32_t group_id() const;
  uint32_t epoch() const;
  uint8_t depth() const;
  size_t size() const;  // members, staged changes included
  bool Contains(uint32_t member) const;
  std::vector<uint32_t> Members() const;  // ascending

  // The whole state, secrets included (the KS seals it; gks stores it):
  //   tree  = version:u8(1) group_id:u32 epoch:u32 depth:u8 slots:u32
  //           (member:u32 version:u32 [secret:bytes[32] if member != 0]){slots}
  //           then for each level 1..depth, for each of its
  //           ceil(slots / 4^level) nodes:
  //           version:u32 [secret:bytes[32] if a member is below]
  // `slots` is the highest leaf position ever used plus one. FAILED_
  // PRECONDITION while changes are staged.
  StatusOr<SecretBytes> Serialize() const;
  static StatusOr<GroupKeyTree> Deserialize(std::span<const uint8_t> in,
                                            KeySource* keys);

  // ---- Pieces: the state in small records (group_key_tree_pieces.cc) ----
  // The KS stores a tree as its shape plus pieces of kGroupTreePieceNodes
  // consecutive nodes of one level, so that a commit rewrites only the
  // pieces it touched (one per level per changed path). A piece is
  //   leaves (level 0): (member:u32 version:u32 secret:bytes[32]){k}
  //   level >= 1:       (version:u32 secret:bytes[32]){k}
  // for the k nodes of the level in its range (the last piece of a level
  // may be short); the secret is all zero where no member is below. A
  // piece that is not stored reads as all zero (never used).
  struct PieceId {
    uint8_t level = 0;
    uint32_t piece = 0;
    auto operator<=>(const PieceId&) const = default;
  };
  struct Shape {
    uint32_t epoch = 0;
    uint8_t depth = 1;
    uint32_t slots = 0;  // leaf slots ever used
  };
  Shape shape() const;
  // Every piece of the tree as it is now, in (level, piece) order.
  std::vector<PieceId> AllPieces() const;
  // The pieces the last Commit changed: every node it renewed or added
  // (a growth of the depth keeps the names of the nodes below).
  const std::vector<PieceId>& ChangedPieces() const;
  // The pieces that the staged changes will change (to bound a commit).
  std::vector<PieceId> StagedPieces() const;
  // FAILED_PRECONDITION while staged, NOT_FOUND for no such piece.
  StatusOr<SecretBytes> EncodePiece(PieceId id) const;
  // The leaf slot of `member` (NOT_FOUND for a non-member).
  StatusOr<uint32_t> PositionOf(uint32_t member) const;
  // The member at leaf slot `position` (0: free).
  uint32_t MemberAt(uint32_t position) const;
  // A tree from its shape and stored pieces (absent pieces: zero).
  // INVALID_ARGUMENT "malformed group tree: ..." for a bad piece or a
  // member twice.
  static StatusOr<GroupKeyTree> FromPieces(
      uint32_t group_id, Shape shape,
      const std::vector<std::pair<PieceId, SecretBytes>>& pieces,
      KeySource* keys);

 private:
  struct State;
  explicit GroupKeyTree(std::unique_ptr<State> state);
  std::unique_ptr<State> s_;
};

}  // namespace kgr::group

#endif  // KGR_GROUP_GROUP_KEY_TREE_H_
