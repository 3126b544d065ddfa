// GroupKeyTree in pieces (group_key_tree.h "Pieces"): how the KS stores a
// large tree so that a rekey rewrites only what it touched.
#include <algorithm>
#include <set>
#include <string>

#include "group/group_key_tree.h"
#include "group/tree_state.h"
#include "kgr/bytes.h"

namespace kgr::group {
namespace {

using tree_internal::kNone;
using tree_internal::Level;

Status CorruptPiece(std::string_view what) {
  return InvalidArgumentError("malformed group tree: " + std::string(what));
}

size_t NodeWidth(uint8_t level) {
  return (level == 0 ? 8 : 4) + kGroupSecretSize;
}

uint32_t PiecesOfLevel(size_t nodes) {
  return static_cast<uint32_t>((nodes + kGroupTreePieceNodes - 1) /
                               kGroupTreePieceNodes);
}

}  // namespace

GroupKeyTree::Shape GroupKeyTree::shape() const {
  return Shape{s_->epoch, s_->depth, s_->slots};
}

std::vector<GroupKeyTree::PieceId> GroupKeyTree::AllPieces() const {
  std::vector<PieceId> out;
  for (uint8_t level = 0; level <= s_->depth; ++level) {
    const uint32_t n = PiecesOfLevel(s_->levels[level].size());
    for (uint32_t p = 0; p < n; ++p) out.push_back({level, p});
  }
  return out;
}

const std::vector<GroupKeyTree::PieceId>& GroupKeyTree::ChangedPieces() const {
  return s_->changed_pieces;
}

std::vector<GroupKeyTree::PieceId> GroupKeyTree::StagedPieces() const {
  std::set<PieceId> out;
  for (uint32_t position : s_->staged) {
    uint32_t node = position;
    for (uint8_t level = 0; level <= s_->depth; ++level) {
      out.insert({level, node / kGroupTreePieceNodes});
      node /= kGroupTreeArity;
    }
  }
  if (s_->refresh) out.insert({s_->depth, 0});
  return {out.begin(), out.end()};
}

StatusOr<SecretBytes> GroupKeyTree::EncodePiece(PieceId id) const {
  if (HasStaged()) return FailedPreconditionError("changes are staged");
  if (id.level > s_->depth) return NotFoundError("no such tree level");
  const Level& l = s_->levels[id.level];
  const uint64_t first = uint64_t{id.piece} * kGroupTreePieceNodes;
  if (first >= l.size()) return NotFoundError("no such tree piece");
  const uint64_t end =
      std::min<uint64_t>(l.size(), first + kGroupTreePieceNodes);
  SecretBytes out((end - first) * NodeWidth(id.level));
  uint8_t* at = out.data();
  for (uint64_t n = first; n < end; ++n) {
    const uint32_t node = static_cast<uint32_t>(n);
    auto put32 = [&at](uint32_t v) {
      for (int shift = 24; shift >= 0; shift -= 8) *at++ = uint8_t(v >> shift);
    };
    if (id.level == 0) put32(s_->members[node]);
    put32(l.versions[node]);
    if (l.counts[node] > 0) {
      auto secret = l.Secret(node);
      std::copy(secret.begin(), secret.end(), at);
    }
    at += kGroupSecretSize;  // zero where no member is below
  }
  return out;
}

StatusOr<uint32_t> GroupKeyTree::PositionOf(uint32_t member) const {
  auto it = s_->position_of.find(member);
  if (it == s_->position_of.end()) return NotFoundError("not a member");
  return it->second;
}

uint32_t GroupKeyTree::MemberAt(uint32_t position) const {
  return position < s_->members.size() ? s_->members[position] : kNone;
}

StatusOr<GroupKeyTree> GroupKeyTree::FromPieces(
    uint32_t group_id, Shape shape,
    const std::vector<std::pair<PieceId, SecretBytes>>& pieces,
    KeySource* keys) {
  auto s = std::make_unique<State>();
  s->group_id = group_id;
  s->keys = keys;
  s->epoch = shape.epoch;
  s->depth = shape.depth;
  if (s->depth < 1 || s->depth > kMaxGroupTreeDepth)
    return CorruptPiece("depth");
  if (shape.slots > s->Capacity())
    return CorruptPiece("more slots than leaves");
  s->levels.resize(s->depth + 1);
  s->EnsureSlots(shape.slots);
  std::vector<std::pair<PieceId, std::span<const uint8_t>>> inner;
  for (const auto& [id, bytes] : pieces) {
    if (id.level > s->depth) return CorruptPiece("piece above the root");
    Level& l = s->levels[id.level];
    const uint64_t first = uint64_t{id.piece} * kGroupTreePieceNodes;
    if (first >= l.size()) return CorruptPiece("piece beyond the slots");
    const uint64_t end =
        std::min<uint64_t>(l.size(), first + kGroupTreePieceNodes);
    if (bytes.size() != (end - first) * NodeWidth(id.level))
      return CorruptPiece("piece size");
    ByteReader r(bytes.span());
    for (uint64_t n = first; n < end; ++n) {
      const uint32_t node = static_cast<uint32_t>(n);
      std::span<const uint8_t> secret;
      if (id.level == 0) r.U32(&s->members[node]);
      r.U32(&l.versions[node]);
      r.View(kGroupSecretSize, &secret);
      l.SetSecret(node, secret);
      if (id.level != 0 || s->members[node] == kNone) continue;
      if (!s->position_of.emplace(s->members[node], node).second)
        return CorruptPiece("a member twice");
      s->AddCount(node, +1);
    }
  }
  for (uint32_t p = 0; p < s->slots; ++p) {
    if (s->members[p] == kNone) s->free_positions.insert(p);
  }
  // A node without members below holds no secret.
  for (uint8_t level = 0; level <= s->depth; ++level) {
    Level& l = s->levels[level];
    for (uint32_t n = 0; n < l.size(); ++n) {
      if (l.counts[n] == 0) l.WipeSecret(n);
    }
  }
  return GroupKeyTree(std::move(s));
}

}  // namespace kgr::group
