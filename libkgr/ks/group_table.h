// Internal to libkgr/ks: a group as the KS works on it, loaded from its
// records of the `groups` file (a header and pieces: records.h GroupDesc,
// docs/storage.md 1.6) once and kept in memory (GroupState::loaded), and
// written back record by record: a rekey writes the header and the pieces
// it touched, in one batch (one fdatasync), never the whole group.
//
// The membership the KS enforces is the key tree's members plus the
// header's pending joins, minus its pending leaves (changes accepted and
// waiting for the batch window).
#ifndef KGR_KS_GROUP_TABLE_H_
#define KGR_KS_GROUP_TABLE_H_

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <vector>

#include "group/group_key_tree.h"
#include "kgr/records.h"
#include "kgr/store.h"

namespace kgr::ks {

using SignPublic = std::array<uint8_t, kEd25519PublicSize>;

struct LoadedGroup {
  GroupDesc header;  // kHeader
  group::GroupKeyTree tree;
  // Per member of the tree: its Ed25519 public key (all zero: none yet).
  std::map<uint32_t, SignPublic> sign_keys;

  explicit LoadedGroup(group::GroupKeyTree t) : tree(std::move(t)) {}
  bool IsMember(uint32_t n_id) const;
  // Every member (tree and pending), ascending n_id, with its key.
  const std::vector<GroupMember>& Members() const;
  size_t MemberCount() const { return Members().size(); }
  // Call after any change of the tree, the keys or the pending list.
  void Changed() { members_.reset(); }

 private:
  mutable std::optional<std::vector<GroupMember>> members_;
};

// Loads group `group_id` (header, tree pieces, member pieces): NOT_FOUND
// for no such group, INVALID_ARGUMENT / DATA_LOSS for damaged records.
StatusOr<LoadedGroup> LoadGroupRecords(const GroupDescStore& store,
                                       uint32_t group_id);
// The ids of every group (header records), ascending.
std::vector<uint32_t> GroupIds(const GroupDescStore& store);

// Adds to `batch` the header, the tree pieces the last commit changed and
// the member pieces holding `slots`.
Status AddGroupWrites(const LoadedGroup& g, const std::set<uint32_t>& slots,
                      GroupDescStore::Batch* batch);
// Adds the member piece holding `slot` to `batch`.
Status AddGroupMemberPiece(const LoadedGroup& g, uint32_t slot,
                           GroupDescStore::Batch* batch);
// Adds the deletion of every record of group `group_id` to `batch`.
void AddGroupDeletes(const GroupDescStore& store, uint32_t group_id,
                     GroupDescStore::Batch* batch);

}  // namespace kgr::ks

#endif  // KGR_KS_GROUP_TABLE_H_
