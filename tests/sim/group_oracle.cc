#include "group_oracle.h"

#include "kgr/frame.h"
#include "kgr/topic.h"

namespace kgr::sim {

void GroupOracle::Joined(uint32_t group, uint32_t n_id, uint32_t epoch_before) {
  Group& g = groups_[group];
  auto& v = g.members[n_id];
  if (!v.empty() && v.back().until == UINT32_MAX) return;  // already in
  v.push_back({epoch_before, UINT32_MAX});
  // What it learned before this add is checked against the new interval
  // too (nothing changes for epochs it already held).
}

void GroupOracle::Left(uint32_t group, uint32_t n_id, uint32_t epoch_before) {
  Group& g = groups_[group];
  auto& v = g.members[n_id];
  if (v.empty() || v.back().until != UINT32_MAX) return;
  v.back().until = epoch_before;
  // It may already have been sent keys past the removal (the rekey goes
  // out inside the AC's call): check what it holds now.
  auto k = g.known.find(n_id);
  if (k == g.known.end()) return;
  for (uint32_t e : std::set<uint32_t>(k->second.epochs)) {
    CheckHeld(group, n_id, e, "could compute (from what it received)");
  }
}

bool GroupOracle::IsMember(uint32_t group, uint32_t n_id) const {
  auto g = groups_.find(group);
  if (g == groups_.end()) return false;
  auto m = g->second.members.find(n_id);
  return m != g->second.members.end() && !m->second.empty() &&
         m->second.back().until == UINT32_MAX;
}

bool GroupOracle::WasMember(uint32_t group, uint32_t n_id) const {
  auto g = groups_.find(group);
  return g != groups_.end() && g->second.members.count(n_id) > 0;
}

bool GroupOracle::Knows(uint32_t group, uint32_t n_id, uint32_t epoch) const {
  auto g = groups_.find(group);
  if (g == groups_.end()) return false;
  auto k = g->second.known.find(n_id);
  return k != g->second.known.end() && k->second.epochs.count(epoch) > 0;
}

void GroupOracle::Resume() {
  if (--deferred_ > 0) return;
  std::vector<Held> pending = std::move(pending_);
  pending_.clear();
  for (const Held& h : pending) CheckHeld(h.group, h.n_id, h.epoch, h.how);
}

void GroupOracle::CheckHeld(uint32_t group, uint32_t n_id, uint32_t epoch,
                            const std::string& how) {
  if (deferred_ > 0) return pending_.push_back({group, n_id, epoch, how});
  auto g = groups_.find(group);
  const std::vector<Interval> none;
  const auto& intervals = g == groups_.end() || !g->second.members.count(n_id)
                              ? none
                              : g->second.members.at(n_id);
  bool after_removal = false;
  std::string spans;
  for (const Interval& i : intervals) {
    if (epoch > i.after && epoch <= i.until) return;
    if (i.until != UINT32_MAX && epoch > i.until) after_removal = true;
    spans += " (v" + std::to_string(i.after) + ", " +
             (i.until == UINT32_MAX ? std::string("now")
                                    : "v" + std::to_string(i.until)) +
             "]";
  }
  const std::string what =
      name_(n_id) + " " + how + " the key of group " + FormatNodeId(group) +
      " v" + std::to_string(epoch) + "; its membership: " +
      (spans.empty() ? std::string(" never a member") : spans);
  fail_(after_removal ? "group_forward_secrecy" : "group_backward_secrecy",
        what);
}

void GroupOracle::OnRekeyFrame(const Bytes& frame) {
  // clear_header body signature (kgr/group_rekey.h)
  if (frame.size() < kFrameHeaderSize + kEd25519SignatureSize) return;
  auto part = GroupRekeyPart::Parse(std::span<const uint8_t>(
      frame.data() + kFrameHeaderSize,
      frame.size() - kFrameHeaderSize - kEd25519SignatureSize));
  if (!part.ok()) return;
  Group& g = groups_[part->group_id];
  if (!g.frames.insert(frame).second) return;  // a copy
  ++rekey_frames_;
  const uint32_t group = part->group_id;
  g.rekeys[part->epoch].push_back(std::move(*part));
  for (auto& [n_id, k] : g.known) Close(group, g, n_id);
}

void GroupOracle::OnPath(uint32_t n_id, const GroupPath& path) {
  Group& g = groups_[path.group_id];
  Knowledge& k = g.known[n_id];
  for (size_t level = 0; level < path.keys.size(); ++level) {
    const uint32_t pos =
        path.leaf_position >> (2 * static_cast<uint32_t>(level));
    k.secrets.emplace(
        NodeName{static_cast<uint8_t>(level), pos, path.keys[level].version},
        path.keys[level].secret.Clone());
  }
  if (!path.keys.empty()) {
    LearnRoot(path.group_id, g, n_id, path.epoch, path.keys.back().secret);
  }
  Close(path.group_id, g, n_id);
}

bool GroupOracle::TryOpen(uint32_t group, Knowledge& k, uint32_t epoch,
                          uint8_t depth, const RekeyEntry& e) {
  (void)depth;
  const uint8_t child_level = static_cast<uint8_t>(e.level - 1);
  const uint32_t child_pos = e.position * kGroupTreeArity + e.child_slot;
  auto it = k.secrets.lower_bound(NodeName{child_level, child_pos, 0});
  for (; it != k.secrets.end() && std::get<0>(it->first) == child_level &&
         std::get<1>(it->first) == child_pos;
       ++it) {
    const uint32_t child_version = std::get<2>(it->first);
    auto kek =
        GroupNodeKek(it->second, group, child_level, child_pos, child_version);
    if (!kek.ok()) continue;
    WrapPlace place{group,     epoch,        e.level,      e.position,
                    e.version, e.child_slot, child_version};
    ++unwraps_;
    auto secret = UnwrapGroupSecret(*kek, place, e.wrapped);
    if (!secret.ok()) continue;
    k.secrets.emplace(NodeName{e.level, e.position, e.version},
                      std::move(*secret));
    return true;
  }
  return false;
}

void GroupOracle::Close(uint32_t group, Group& g, uint32_t n_id) {
  Knowledge& k = g.known[n_id];
  for (bool changed = true; changed;) {
    changed = false;
    for (auto& [epoch, parts] : g.rekeys) {
      for (const GroupRekeyPart& part : parts) {
        for (const RekeyEntry& e : part.entries) {
          if (k.secrets.count(NodeName{e.level, e.position, e.version})) {
            continue;
          }
          if (!TryOpen(group, k, epoch, part.depth, e)) continue;
          changed = true;
          if (e.level == part.depth && e.position == 0) {
            LearnRoot(group, g, n_id, epoch,
                      k.secrets.at(NodeName{e.level, e.position, e.version}));
          }
        }
      }
    }
  }
}

void GroupOracle::LearnRoot(uint32_t group, Group& g, uint32_t n_id,
                            uint32_t epoch, const SecretBytes& root) {
  Bytes fingerprint(root.span().begin(), root.span().end());
  auto [it, first] = g.root_of_epoch.emplace(epoch, fingerprint);
  if (!first && it->second != fingerprint) {
    fail_("group_one_key_per_epoch",
          "group " + FormatNodeId(group) + " has two different keys of v" +
              std::to_string(epoch) + " (the second reached " + name_(n_id) +
              ")");
  }
  if (!g.known[n_id].epochs.insert(epoch).second) return;
  CheckHeld(group, n_id, epoch, "could compute (from what it received)");
}

}  // namespace kgr::sim
