// A group's records (header, key tree pieces, member pieces) to and from
// the KS's in-memory group (group_table.h).
#include "ks/group_table.h"

#include <algorithm>
#include <string>

#include "kgr/topic.h"

namespace kgr::ks {
namespace {

using Kind = GroupDesc::Kind;

Status Damaged(uint32_t group_id, std::string_view what) {
  return DataLossError("group " + FormatNodeId(group_id) + ": " +
                       std::string(what));
}

// The keys of group `group_id`'s records of `kind`, ascending.
std::vector<uint64_t> KeysOf(const GroupDescStore& store, uint32_t group_id,
                             Kind kind) {
  std::vector<uint64_t> out;
  for (uint64_t key : store.List()) {
    if (static_cast<uint32_t>(key) == group_id &&
        static_cast<Kind>(key >> 56) == kind) {
      out.push_back(key);
    }
  }
  return out;
}

}  // namespace

bool LoadedGroup::IsMember(uint32_t n_id) const {
  bool member = tree.Contains(n_id);
  for (const GroupChange& c : header.pending) {
    if (c.n_id == n_id) member = c.join;
  }
  return member;
}

const std::vector<GroupMember>& LoadedGroup::Members() const {
  if (members_) return *members_;
  std::map<uint32_t, SignPublic> all = sign_keys;
  for (const GroupChange& c : header.pending) {
    if (c.join) {
      all[c.n_id] = c.sign_public;
    } else {
      all.erase(c.n_id);
    }
  }
  members_.emplace();
  members_->reserve(all.size());
  for (const auto& [n_id, key] : all) members_->push_back({n_id, key});
  return *members_;
}

StatusOr<LoadedGroup> LoadGroupRecords(const GroupDescStore& store,
                                       uint32_t group_id) {
  KGR_ASSIGN_OR_RETURN(GroupDesc header, store.Get(group_id));
  std::vector<std::pair<group::GroupKeyTree::PieceId, SecretBytes>> pieces;
  for (uint64_t key : KeysOf(store, group_id, Kind::kTreePiece)) {
    KGR_ASSIGN_OR_RETURN(GroupDesc p, store.Get(key));
    pieces.emplace_back(group::GroupKeyTree::PieceId{p.level, p.piece},
                        std::move(p.tree));
  }
  const group::GroupKeyTree::Shape shape{header.key_version, header.tree_depth,
                                         header.tree_slots};
  KGR_ASSIGN_OR_RETURN(group::GroupKeyTree tree,
                       group::GroupKeyTree::FromPieces(
                           group_id, shape, pieces, &group::SystemKeySource()));
  LoadedGroup g(std::move(tree));
  g.header = std::move(header);
  for (uint64_t key : KeysOf(store, group_id, Kind::kMemberPiece)) {
    KGR_ASSIGN_OR_RETURN(GroupDesc p, store.Get(key));
    const uint32_t first = uint32_t{p.piece} * kGroupMemberPieceSlots;
    for (size_t i = 0; i < p.members.size(); ++i) {
      const GroupMember& m = p.members[i];
      if (m.n_id == 0) continue;
      if (g.tree.MemberAt(first + static_cast<uint32_t>(i)) != m.n_id)
        return Damaged(group_id, "member pieces do not match the key tree");
      g.sign_keys[m.n_id] = m.sign_public;
    }
  }
  if (g.sign_keys.size() != g.tree.size() ||
      g.header.member_count != g.tree.size()) {
    return Damaged(group_id, "member pieces do not match the key tree");
  }
  return g;
}

std::vector<uint32_t> GroupIds(const GroupDescStore& store) {
  std::vector<uint32_t> out;
  for (uint64_t key : store.List()) {
    if (static_cast<Kind>(key >> 56) == Kind::kHeader)
      out.push_back(static_cast<uint32_t>(key));
  }
  std::sort(out.begin(), out.end());
  return out;
}

Status AddGroupMemberPiece(const LoadedGroup& g, uint32_t slot,
                           GroupDescStore::Batch* batch) {
  GroupDesc p;
  p.group_id = g.header.group_id;
  p.kind = Kind::kMemberPiece;
  p.piece = static_cast<uint16_t>(slot / kGroupMemberPieceSlots);
  const uint32_t first = uint32_t{p.piece} * kGroupMemberPieceSlots;
  const uint32_t end =
      std::min<uint32_t>(g.tree.shape().slots,
                         first + static_cast<uint32_t>(kGroupMemberPieceSlots));
  for (uint32_t s = first; s < end; ++s) {
    GroupMember m{g.tree.MemberAt(s), {}};
    auto key = g.sign_keys.find(m.n_id);
    if (m.n_id != 0 && key != g.sign_keys.end()) m.sign_public = key->second;
    p.members.push_back(m);
  }
  if (p.members.empty()) return OkStatus();
  return batch->Put(p);
}

Status AddGroupWrites(const LoadedGroup& g, const std::set<uint32_t>& slots,
                      GroupDescStore::Batch* batch) {
  KGR_RETURN_IF_ERROR(batch->Put(g.header));
  for (const auto& id : g.tree.ChangedPieces()) {
    GroupDesc p;
    p.group_id = g.header.group_id;
    p.kind = Kind::kTreePiece;
    p.level = id.level;
    p.piece = static_cast<uint16_t>(id.piece);
    KGR_ASSIGN_OR_RETURN(p.tree, g.tree.EncodePiece(id));
    KGR_RETURN_IF_ERROR(batch->Put(p));
  }
  std::set<uint32_t> pieces;
  for (uint32_t s : slots) {
    if (pieces.insert(s / kGroupMemberPieceSlots).second)
      KGR_RETURN_IF_ERROR(AddGroupMemberPiece(g, s, batch));
  }
  return OkStatus();
}

void AddGroupDeletes(const GroupDescStore& store, uint32_t group_id,
                     GroupDescStore::Batch* batch) {
  for (uint64_t key : store.List()) {
    if (static_cast<uint32_t>(key) == group_id) batch->Delete(key);
  }
}

}  // namespace kgr::ks
