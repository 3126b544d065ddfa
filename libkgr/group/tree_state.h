// The state behind GroupKeyTree (internal to libkgr/group/).
#ifndef KGR_GROUP_TREE_STATE_H_
#define KGR_GROUP_TREE_STATE_H_

#include <cstdint>
#include <set>
#include <span>
#include <unordered_map>
#include <vector>

#include "group/group_key_tree.h"

namespace kgr::group {
namespace tree_internal {

inline constexpr uint32_t kNone = 0;  // a free leaf slot

// One level of the tree: per node a secret (in one wiped buffer), a
// version and the number of members below it.
struct Level {
  SecretBytes secrets;  // kGroupSecretSize per node
  std::vector<uint32_t> versions;
  std::vector<uint32_t> counts;

  size_t size() const { return versions.size(); }
  void Resize(uint64_t nodes);
  std::span<const uint8_t> Secret(uint32_t node) const {
    return secrets.span().subspan(size_t{node} * kGroupSecretSize,
                                  kGroupSecretSize);
  }
  void SetSecret(uint32_t node, std::span<const uint8_t> secret);
  void WipeSecret(uint32_t node);
};

}  // namespace tree_internal

struct GroupKeyTree::State {
  uint32_t group_id = 0;
  uint32_t epoch = 0;
  uint8_t depth = 1;
  KeySource* keys = nullptr;
  std::vector<tree_internal::Level> levels;  // 0 (leaves) .. depth (root)
  std::vector<uint32_t> members;             // per leaf slot, kNone if free
  std::unordered_map<uint32_t, uint32_t> position_of;
  std::set<uint32_t> free_positions;  // free slots below `slots`
  uint32_t slots = 0;                 // leaf slots ever used
  std::vector<uint32_t> staged;       // leaf positions changed since commit
  bool refresh = false;
  // The pieces the last commit changed (GroupKeyTree::ChangedPieces).
  std::vector<GroupKeyTree::PieceId> changed_pieces;

  uint64_t Capacity() const;
  // Makes room for `n` leaf slots on every level.
  void EnsureSlots(uint32_t n);
  // A new root above the current one.
  void Grow();
  // Adds `delta` to the member count of every node from the leaf up.
  void AddCount(uint32_t position, int delta);
  // Gives node (level, node) a new secret and version, wrapped under each
  // child with members (appended to `entries`); wipes it if none is left.
  Status Renew(uint8_t level, uint32_t node, uint32_t new_epoch,
               std::vector<RekeyEntry>* entries);
};

}  // namespace kgr::group

#endif  // KGR_GROUP_TREE_STATE_H_
