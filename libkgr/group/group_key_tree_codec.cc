// GroupKeyTree's levels and its serialization (group_key_tree.h).
#include <algorithm>
#include <string>

#include "group/group_key_tree.h"
#include "group/tree_state.h"
#include "kgr/bytes.h"

namespace kgr::group {
namespace tree_internal {

void Level::Resize(uint64_t nodes) {
  if (nodes <= size()) return;
  size_t bytes = nodes * kGroupSecretSize;
  if (secrets.size() < bytes) {
    SecretBytes zeros(bytes - secrets.size());
    secrets.Append(zeros.span());
  }
  versions.resize(nodes, 0);
  counts.resize(nodes, 0);
}

void Level::SetSecret(uint32_t node, std::span<const uint8_t> secret) {
  std::copy(secret.begin(), secret.end(),
            secrets.data() + size_t{node} * kGroupSecretSize);
}

void Level::WipeSecret(uint32_t node) {
  SecretBytes zeros(kGroupSecretSize);
  SetSecret(node, zeros.span());
}

}  // namespace tree_internal

namespace {

constexpr uint8_t kTreeFormatVersion = 1;
using tree_internal::Level;

Status Corrupt(std::string_view what) {
  return InvalidArgumentError("malformed group tree: " + std::string(what));
}

}  // namespace

StatusOr<SecretBytes> GroupKeyTree::Serialize() const {
  if (HasStaged()) return FailedPreconditionError("changes are staged");
  Bytes out;
  ByteWriter w(&out);
  w.U8(kTreeFormatVersion);
  w.U32(s_->group_id);
  w.U32(s_->epoch);
  w.U8(s_->depth);
  w.U32(s_->slots);
  const Level& leaves = s_->levels[0];
  for (uint32_t p = 0; p < s_->slots; ++p) {
    w.U32(s_->members[p]);
    w.U32(leaves.versions[p]);
    if (s_->members[p] != tree_internal::kNone) w.Raw(leaves.Secret(p));
  }
  for (uint8_t level = 1; level <= s_->depth; ++level) {
    const Level& l = s_->levels[level];
    for (uint32_t n = 0; n < l.size(); ++n) {
      w.U32(l.versions[n]);
      if (l.counts[n] > 0) w.Raw(l.Secret(n));
    }
  }
  SecretBytes result(out);
  WipeVector(out);
  return result;
}

StatusOr<GroupKeyTree> GroupKeyTree::Deserialize(std::span<const uint8_t> in,
                                                 KeySource* keys) {
  ByteReader r(in);
  auto s = std::make_unique<State>();
  s->keys = keys;
  uint8_t format = 0;
  uint32_t slots = 0;
  if (!r.U8(&format) || !r.U32(&s->group_id) || !r.U32(&s->epoch) ||
      !r.U8(&s->depth) || !r.U32(&slots)) {
    return Corrupt("truncated header");
  }
  if (format != kTreeFormatVersion) return Corrupt("unknown version");
  if (s->depth < 1 || s->depth > kMaxGroupTreeDepth) return Corrupt("depth");
  if (slots > s->Capacity()) return Corrupt("more slots than leaves");
  // Each slot takes at least 8 bytes: refuse a count the input cannot hold
  // before allocating for it.
  if (r.remaining() / 8 < slots) return Corrupt("truncated leaves");
  s->levels.resize(s->depth + 1);
  s->EnsureSlots(slots);
  Level& leaves = s->levels[0];
  for (uint32_t p = 0; p < slots; ++p) {
    std::span<const uint8_t> secret;
    if (!r.U32(&s->members[p]) || !r.U32(&leaves.versions[p])) {
      return Corrupt("truncated leaves");
    }
    if (s->members[p] == tree_internal::kNone) {
      s->free_positions.insert(p);
      continue;
    }
    if (!r.View(kGroupSecretSize, &secret)) return Corrupt("truncated leaves");
    if (!s->position_of.emplace(s->members[p], p).second) {
      return Corrupt("a member twice");
    }
    leaves.SetSecret(p, secret);
    s->AddCount(p, +1);
  }
  for (uint8_t level = 1; level <= s->depth; ++level) {
    Level& l = s->levels[level];
    for (uint32_t n = 0; n < l.size(); ++n) {
      std::span<const uint8_t> secret;
      if (!r.U32(&l.versions[n])) return Corrupt("truncated nodes");
      if (l.counts[n] == 0) continue;
      if (!r.View(kGroupSecretSize, &secret)) return Corrupt("truncated nodes");
      l.SetSecret(n, secret);
    }
  }
  if (!r.done()) return Corrupt("trailing bytes");
  return GroupKeyTree(std::move(s));
}

}  // namespace kgr::group
