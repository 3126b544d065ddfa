// A member's path keys and how a rekey changes them (member_keys.h).
#include "group/member_keys.h"

#include <algorithm>

namespace kgr::group {
namespace {

uint32_t NodeAt(uint32_t leaf_position, uint8_t level) {
  return static_cast<uint32_t>(uint64_t{leaf_position} >> (2 * level));
}
uint8_t SlotAt(uint32_t leaf_position, uint8_t level) {
  return static_cast<uint8_t>(NodeAt(leaf_position, level - 1) %
                              kGroupTreeArity);
}

Status CheckPath(const GroupPath& p) {
  if (p.depth < 1 || p.depth > kMaxGroupTreeDepth) {
    return InvalidArgumentError("group path: bad depth");
  }
  if (p.leaf_position >= (uint64_t{1} << (2 * p.depth))) {
    return InvalidArgumentError("group path: leaf outside the tree");
  }
  if (p.keys.size() != size_t{p.depth} + 1) {
    return InvalidArgumentError("group path: wrong number of keys");
  }
  for (const auto& k : p.keys) {
    if (k.secret.size() != kGroupSecretSize) {
      return InvalidArgumentError("group path: bad secret size");
    }
  }
  return OkStatus();
}

}  // namespace

std::string_view RekeyOutcomeName(RekeyOutcome outcome) {
  switch (outcome) {
    case RekeyOutcome::kApplied:
      return "applied";
    case RekeyOutcome::kWaitingParts:
      return "waiting for parts";
    case RekeyOutcome::kAlreadyHave:
      return "already have";
    case RekeyOutcome::kMissedRekey:
      return "missed a rekey";
    case RekeyOutcome::kCannotOpen:
      return "cannot open";
  }
  return "unknown";
}

StatusOr<GroupMemberKeys> GroupMemberKeys::FromPath(GroupPath path,
                                                    uint64_t overlap_ms) {
  KGR_RETURN_IF_ERROR(CheckPath(path));
  GroupMemberKeys m;
  m.overlap_ms_ = overlap_ms;
  KGR_ASSIGN_OR_RETURN(
      m.current_keys_,
      GroupDataKeys(path.keys.back().secret, path.group_id, path.epoch));
  m.path_ = std::move(path);
  return m;
}

StatusOr<RekeyOutcome> GroupMemberKeys::Apply(const GroupRekeyPart& part,
                                              uint64_t now_ms) {
  if (part.group_id != path_.group_id) {
    return InvalidArgumentError("rekey for another group");
  }
  if (part.epoch <= path_.epoch) return RekeyOutcome::kAlreadyHave;
  if (part.epoch > path_.epoch + 1) return RekeyOutcome::kMissedRekey;
  if (part.depth < path_.depth) return RekeyOutcome::kCannotOpen;
  if (!pending_ || pending_->epoch != part.epoch ||
      pending_->parts != part.parts || pending_->depth != part.depth) {
    pending_ = Pending{};
    pending_->epoch = part.epoch;
    pending_->depth = part.depth;
    pending_->parts = part.parts;
    pending_->seen.assign(part.parts, false);
  }
  Pending& p = *pending_;
  if (p.seen[part.part]) return RekeyOutcome::kWaitingParts;
  p.seen[part.part] = true;
  ++p.seen_count;
  uint32_t leaf = path_.leaf_position;
  for (const RekeyEntry& e : part.entries) {
    if (e.position != NodeAt(leaf, e.level)) continue;
    p.levels_present |= uint32_t{1} << e.level;
    if (e.child_slot == SlotAt(leaf, e.level)) p.on_path.push_back(e);
  }
  if (p.seen_count < p.parts) return RekeyOutcome::kWaitingParts;
  auto outcome = ApplyComplete(p.epoch, p.depth, now_ms);
  pending_.reset();
  return outcome;
}

StatusOr<RekeyOutcome> GroupMemberKeys::ApplyComplete(uint32_t epoch,
                                                      uint8_t depth,
                                                      uint64_t now_ms) {
  const Pending& p = *pending_;
  if ((p.levels_present & (uint32_t{1} << depth)) == 0) {
    return RekeyOutcome::kCannotOpen;  // every rekey changes the root
  }
  GroupPath next = path_.Clone();
  next.epoch = epoch;
  next.depth = depth;
  next.keys.resize(size_t{depth} + 1);  // the tree grew: new levels empty
  uint32_t leaf = path_.leaf_position;
  for (uint8_t level = 1; level <= depth; ++level) {
    GroupPathKey& key = next.keys[level];
    if ((p.levels_present & (uint32_t{1} << level)) == 0) {
      if (key.secret.empty()) return RekeyOutcome::kCannotOpen;
      continue;
    }
    auto e =
        std::find_if(p.on_path.begin(), p.on_path.end(),
                     [&](const RekeyEntry& x) { return x.level == level; });
    if (e == p.on_path.end()) return RekeyOutcome::kCannotOpen;
    const GroupPathKey& child = next.keys[level - 1];
    uint32_t child_node = NodeAt(leaf, level - 1);
    KGR_ASSIGN_OR_RETURN(SymmetricKeys kek,
                         GroupNodeKek(child.secret, path_.group_id,
                                      static_cast<uint8_t>(level - 1),
                                      child_node, child.version));
    WrapPlace place{path_.group_id, epoch,         level,        e->position,
                    e->version,     e->child_slot, child.version};
    auto secret = UnwrapGroupSecret(kek, place, e->wrapped);
    if (!secret.ok()) return RekeyOutcome::kCannotOpen;
    key = {e->version, *std::move(secret)};
  }
  KGR_RETURN_IF_ERROR(MoveTo(std::move(next), now_ms));
  return RekeyOutcome::kApplied;
}

Status GroupMemberKeys::Replace(GroupPath path, uint64_t now_ms) {
  KGR_RETURN_IF_ERROR(CheckPath(path));
  if (path.group_id != path_.group_id) {
    return InvalidArgumentError("path for another group");
  }
  if (path.epoch < path_.epoch) {
    return FailedPreconditionError("path older than the keys held");
  }
  pending_.reset();
  return MoveTo(std::move(path), now_ms);
}

Status GroupMemberKeys::MoveTo(GroupPath next, uint64_t now_ms) {
  KGR_ASSIGN_OR_RETURN(
      SymmetricKeys keys,
      GroupDataKeys(next.keys.back().secret, next.group_id, next.epoch));
  if (next.epoch > path_.epoch) {
    previous_keys_ = std::move(current_keys_);
    previous_epoch_ = path_.epoch;
    previous_until_ms_ = now_ms + overlap_ms_;
  }
  current_keys_ = std::move(keys);
  path_ = std::move(next);
  return OkStatus();
}

const SymmetricKeys* GroupMemberKeys::DataKeysFor(uint32_t epoch,
                                                  uint64_t now_ms) const {
  if (epoch == path_.epoch) return &current_keys_;
  if (epoch + 1 == path_.epoch && previous_epoch_ == epoch &&
      previous_keys_.valid() && now_ms < previous_until_ms_) {
    return &previous_keys_;
  }
  return nullptr;
}

}  // namespace kgr::group
