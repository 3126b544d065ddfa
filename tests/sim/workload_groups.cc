#include "workload_groups.h"

namespace kgr::sim {
namespace {

constexpr size_t kMaxLiveGroups = 3;

}  // namespace

const std::set<std::string>& GroupOpClasses() {
  static const std::set<std::string> all = {"group-create", "group-add",
                                            "group-remove", "group-batch",
                                            "group-delete", "group-send"};
  return all;
}

void GroupOps::Ac(const std::string& op, const Status& st) {
  w_.Count("op." + op);
  w_.Count("op." + op + "." +
           (st.ok() ? "ok" : std::string(StatusCodeName(st.code()))));
  if (!st.ok()) w_.Note("AC " + op + " failed: " + st.ToString());
}

int GroupOps::LiveGroup() {
  std::vector<int> v;
  for (size_t i = 0; i < w_.groups().size(); ++i)
    if (!w_.groups()[i].deleted) v.push_back(static_cast<int>(i));
  return v.empty() ? -1 : v[rng_.Below(v.size())];
}

int GroupOps::Candidate(const SimGroup& g, bool member) {
  std::vector<int> v;
  for (auto& n : w_.nodes()) {
    if (n->revoked) continue;
    if ((g.members.count(n->n_id) > 0) == member) v.push_back(n->index);
  }
  return v.empty() ? -1 : v[rng_.Below(v.size())];
}

void GroupOps::Create() {
  size_t live = 0;
  for (const SimGroup& g : w_.groups()) live += !g.deleted;
  if (live >= kMaxLiveGroups) return;
  std::vector<int> members;
  for (auto& n : w_.nodes())
    if (!n->revoked && rng_.Chance(0.6)) members.push_back(n->index);
  const GroupMode mode =
      rng_.Chance(0.5) ? GroupMode::kGroupKey : GroupMode::kSenderAuth;
  const uint32_t lifetime =
      rng_.Chance(0.7) ? 0 : static_cast<uint32_t>(rng_.Range(30, 600));
  Ac("group_create", w_.CreateGroup(members, mode, lifetime).status());
}

void GroupOps::Change(int gi, bool add) {
  int n = Candidate(w_.groups()[gi], /*member=*/!add);
  if (n < 0) return;
  Ac(add ? "group_add" : "group_remove", w_.ChangeGroup(gi, add, {n}));
}

void GroupOps::Add() {
  if (int gi = LiveGroup(); gi >= 0) Change(gi, true);
}

void GroupOps::Remove() {
  if (int gi = LiveGroup(); gi >= 0) Change(gi, false);
}

void GroupOps::Batch() {
  int gi = LiveGroup();
  if (gi < 0) return;
  w_.Count("op.group_batch");
  const int changes = static_cast<int>(rng_.Range(2, 4));
  for (int i = 0; i < changes; ++i) {
    if (w_.groups()[gi].deleted) return;
    Change(gi, rng_.Chance(0.6));
    w_.RunFor(rng_.Range(0, 150));
  }
}

void GroupOps::Delete() {
  if (int gi = LiveGroup(); gi >= 0) Ac("group_delete", w_.DeleteGroup(gi));
}

void GroupOps::Send() {
  int gi = LiveGroup();
  if (gi < 0) return;
  const SimGroup& g = w_.groups()[gi];
  if (g.members.empty()) return;
  std::vector<int> up;
  for (uint32_t m : g.members) {
    SimNode* n = w_.ByNid(m);
    if (n != nullptr && n->up) up.push_back(n->index);
  }
  if (!up.empty()) w_.SendGroup(up[rng_.Below(up.size())], g.id);
}

}  // namespace kgr::sim
