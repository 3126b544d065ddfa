// The KS's logical key hierarchy (group_key_tree.h): staging, commit,
// paths. Serialization is in group_key_tree_codec.cc.
#include "group/group_key_tree.h"

#include <algorithm>
#include <string>

#include "group/tree_state.h"

namespace kgr::group {

using tree_internal::kNone;
using tree_internal::Level;

GroupKeyTree::GroupKeyTree(uint32_t group_id, KeySource* keys)
    : s_(std::make_unique<State>()) {
  s_->group_id = group_id;
  s_->keys = keys;
  s_->depth = 1;
  s_->levels.resize(2);
  s_->EnsureSlots(0);
}

GroupKeyTree::GroupKeyTree(std::unique_ptr<State> state)
    : s_(std::move(state)) {}
GroupKeyTree::GroupKeyTree(GroupKeyTree&&) noexcept = default;
GroupKeyTree& GroupKeyTree::operator=(GroupKeyTree&&) noexcept = default;
GroupKeyTree::~GroupKeyTree() = default;

Status GroupKeyTree::StageJoin(uint32_t member) {
  if (member == kNone) return InvalidArgumentError("member id 0");
  if (s_->position_of.contains(member)) {
    return AlreadyExistsError("already a member of group " +
                              std::to_string(s_->group_id));
  }
  uint32_t position;
  if (!s_->free_positions.empty()) {
    position = *s_->free_positions.begin();
  } else {
    if (s_->slots == s_->Capacity()) {
      if (s_->depth == kMaxGroupTreeDepth) {
        return ResourceExhaustedError("group is full");
      }
      s_->Grow();
    }
    position = s_->slots;
    s_->EnsureSlots(s_->slots + 1);
  }
  SecretBytes secret(kGroupSecretSize);
  KGR_RETURN_IF_ERROR(s_->keys->Fill(secret.mutable_span()));
  s_->free_positions.erase(position);
  s_->members[position] = member;
  s_->position_of[member] = position;
  Level& leaves = s_->levels[0];
  leaves.SetSecret(position, secret.span());
  ++leaves.versions[position];
  s_->AddCount(position, +1);
  s_->staged.push_back(position);
  return OkStatus();
}

Status GroupKeyTree::StageLeave(uint32_t member) {
  auto it = s_->position_of.find(member);
  if (it == s_->position_of.end()) {
    return NotFoundError("not a member of group " +
                         std::to_string(s_->group_id));
  }
  uint32_t position = it->second;
  s_->position_of.erase(it);
  s_->members[position] = kNone;
  s_->free_positions.insert(position);
  s_->levels[0].WipeSecret(position);
  s_->AddCount(position, -1);
  s_->staged.push_back(position);
  return OkStatus();
}

void GroupKeyTree::StageRefresh() { s_->refresh = true; }

bool GroupKeyTree::HasStaged() const {
  return s_->refresh || !s_->staged.empty();
}

StatusOr<GroupRekey> GroupKeyTree::Commit() {
  if (!HasStaged()) return FailedPreconditionError("nothing staged");
  GroupRekey rekey;
  rekey.group_id = s_->group_id;
  rekey.epoch = s_->epoch + 1;
  rekey.depth = s_->depth;
  std::vector<uint32_t> dirty = std::move(s_->staged);
  s_->staged.clear();
  std::vector<PieceId>& pieces = s_->changed_pieces;
  pieces.clear();
  auto note_pieces = [&](uint8_t level) {
    for (uint32_t node : dirty) {
      PieceId id{level, node / kGroupTreePieceNodes};
      if (pieces.empty() || pieces.back() != id) pieces.push_back(id);
    }
  };
  std::sort(dirty.begin(), dirty.end());
  note_pieces(0);
  for (uint8_t level = 1; level <= s_->depth; ++level) {
    for (auto& p : dirty) p /= kGroupTreeArity;
    std::sort(dirty.begin(), dirty.end());
    dirty.erase(std::unique(dirty.begin(), dirty.end()), dirty.end());
    if (level == s_->depth && s_->refresh && dirty.empty()) dirty.push_back(0);
    for (uint32_t node : dirty) {
      KGR_RETURN_IF_ERROR(s_->Renew(level, node, rekey.epoch, &rekey.entries));
    }
    note_pieces(level);
  }
  s_->refresh = false;
  s_->epoch = rekey.epoch;
  return rekey;
}

StatusOr<GroupPath> GroupKeyTree::PathOf(uint32_t member) const {
  if (HasStaged()) return FailedPreconditionError("changes are staged");
  auto it = s_->position_of.find(member);
  if (it == s_->position_of.end()) {
    return NotFoundError("not a member of group " +
                         std::to_string(s_->group_id));
  }
  GroupPath path;
  path.group_id = s_->group_id;
  path.epoch = s_->epoch;
  path.depth = s_->depth;
  path.leaf_position = it->second;
  path.keys.reserve(s_->depth + 1);
  uint32_t node = it->second;
  for (uint8_t level = 0; level <= s_->depth; ++level) {
    const Level& l = s_->levels[level];
    path.keys.push_back({l.versions[node], SecretBytes(l.Secret(node))});
    node /= kGroupTreeArity;
  }
  return path;
}

StatusOr<SymmetricKeys> GroupKeyTree::DataKeys() const {
  if (HasStaged()) return FailedPreconditionError("changes are staged");
  const Level& root = s_->levels[s_->depth];
  if (root.counts[0] == 0) return FailedPreconditionError("empty group");
  return GroupDataKeys(SecretBytes(root.Secret(0)), s_->group_id, s_->epoch);
}

uint32_t GroupKeyTree::group_id() const { return s_->group_id; }
uint32_t GroupKeyTree::epoch() const { return s_->epoch; }
uint8_t GroupKeyTree::depth() const { return s_->depth; }
size_t GroupKeyTree::size() const { return s_->position_of.size(); }
bool GroupKeyTree::Contains(uint32_t member) const {
  return s_->position_of.contains(member);
}
std::vector<uint32_t> GroupKeyTree::Members() const {
  std::vector<uint32_t> out;
  out.reserve(s_->position_of.size());
  for (const auto& [member, position] : s_->position_of) out.push_back(member);
  std::sort(out.begin(), out.end());
  return out;
}

// ---- State ----

uint64_t GroupKeyTree::State::Capacity() const {
  return uint64_t{1} << (2 * depth);
}

void GroupKeyTree::State::EnsureSlots(uint32_t n) {
  slots = std::max(slots, n);
  members.resize(slots, kNone);
  uint64_t span = 1;
  for (uint8_t level = 0; level <= depth; ++level) {
    uint64_t nodes = std::max<uint64_t>(1, (slots + span - 1) / span);
    levels[level].Resize(nodes);
    span *= kGroupTreeArity;
  }
}

void GroupKeyTree::State::Grow() {
  ++depth;
  levels.emplace_back();
  levels[depth].Resize(1);
  levels[depth].counts[0] = levels[depth - 1].counts[0];
}

void GroupKeyTree::State::AddCount(uint32_t position, int delta) {
  uint32_t node = position;
  for (uint8_t level = 0; level <= depth; ++level) {
    levels[level].counts[node] += delta;
    node /= kGroupTreeArity;
  }
}

Status GroupKeyTree::State::Renew(uint8_t level, uint32_t node,
                                  uint32_t new_epoch,
                                  std::vector<RekeyEntry>* entries) {
  Level& l = levels[level];
  ++l.versions[node];
  if (l.counts[node] == 0) {
    l.WipeSecret(node);
    return OkStatus();
  }
  SecretBytes secret(kGroupSecretSize);
  KGR_RETURN_IF_ERROR(keys->Fill(secret.mutable_span()));
  l.SetSecret(node, secret.span());
  const Level& below = levels[level - 1];
  for (uint8_t slot = 0; slot < kGroupTreeArity; ++slot) {
    uint64_t child = uint64_t{node} * kGroupTreeArity + slot;
    if (child >= below.counts.size() || below.counts[child] == 0) continue;
    uint32_t c = static_cast<uint32_t>(child);
    KGR_ASSIGN_OR_RETURN(
        SymmetricKeys kek,
        GroupNodeKek(SecretBytes(below.Secret(c)), group_id,
                     static_cast<uint8_t>(level - 1), c, below.versions[c]));
    RekeyEntry e;
    e.level = level;
    e.position = node;
    e.version = l.versions[node];
    e.child_slot = slot;
    WrapPlace place{group_id, new_epoch,        level, node, e.version,
                    slot,     below.versions[c]};
    KGR_ASSIGN_OR_RETURN(e.wrapped, WrapGroupSecret(kek, place, secret));
    entries->push_back(e);
  }
  return OkStatus();
}

}  // namespace kgr::group
