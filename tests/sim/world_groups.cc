// Groups in the simulated world (docs/simulation.md, "Groups"): the AC's
// kgr-ac group create | add | remove | delete as direct calls on the KS,
// and a node publishing a group message. Every change the AC makes is told
// to the checker's oracle with the group's key version just before it: a
// member added when the group was at epoch E may hold keys of epochs after
// E only; one removed at E holds nothing after E.
#include "checker.h"
#include "world.h"

namespace kgr::sim {
namespace {

Status AnswerStatus(uint8_t status, const std::string& message) {
  if (status == 0) return OkStatus();
  return Status(static_cast<StatusCode>(status), message);
}

}  // namespace

std::optional<AcGroupListAns::Entry> World::KsGroup(uint32_t group_id) {
  if (!ks_.up) return std::nullopt;
  uint32_t after = 0;
  for (;;) {
    AcGroupListAns page = ks_.server->ListGroups(after);
    for (auto& e : page.groups) {
      if (e.group_id == group_id) return std::move(e);
    }
    if (page.status != 0 || page.more == 0 || page.groups.empty()) break;
    after = page.groups.back().group_id;
  }
  return std::nullopt;
}

uint32_t World::GroupEpoch(uint32_t group_id) {
  auto g = KsGroup(group_id);
  return g ? g->key_version : 0;
}

StatusOr<int> World::CreateGroup(const std::vector<int>& members,
                                 GroupMode mode, uint32_t lifetime_s) {
  if (!ks_.up) return UnavailableError("the KS is down");
  AcGroupCreateReq req;
  req.name = "g" + std::to_string(groups_.size() + 1);
  req.mode = mode;
  req.lifetime_s = lifetime_s;
  for (int m : members) req.members.push_back(nodes_[m]->n_id);
  checker_.oracle().Defer();
  AcGroupCreateAns ans = ks_.server->CreateGroup(req);
  if (ans.status == 0) {
    for (uint32_t m : req.members) checker_.OnGroupJoin(ans.group_id, m, 0);
  }
  checker_.oracle().Resume();
  KGR_RETURN_IF_ERROR(AnswerStatus(ans.status, ans.message));
  SimGroup g;
  g.id = ans.group_id;
  g.name = req.name;
  g.mode = mode;
  g.members.insert(req.members.begin(), req.members.end());
  groups_.push_back(std::move(g));
  Note("AC created group " + req.name + " (" + FormatNodeId(ans.group_id) +
       ", " + std::string(GroupModeName(mode)) + ", " +
       std::to_string(members.size()) + " members, lifetime " +
       std::to_string(lifetime_s) + " s): v" + std::to_string(ans.key_version));
  return static_cast<int>(groups_.size()) - 1;
}

Status World::ChangeGroup(int gi, bool add, const std::vector<int>& nodes) {
  if (!ks_.up) return UnavailableError("the KS is down");
  SimGroup& g = groups_[gi];
  AcGroupMembersReq req;
  req.name = g.name;
  req.add = add ? 1 : 0;
  std::string who;
  for (int i : nodes) {
    req.members.push_back(nodes_[i]->n_id);
    who += " " + nodes_[i]->name;
  }
  const uint32_t before = GroupEpoch(g.id);
  uint32_t after = before;
  Status st;
  checker_.oracle().Defer();
  if (!add && options_.bug_ks_keeps_removed) {
    Count("bug.removal_not_sent");
  } else {
    AcGroupMembersAns ans = ks_.server->ChangeGroupMembers(req);
    st = AnswerStatus(ans.status, ans.message);
    after = ans.key_version;
  }
  for (uint32_t m : req.members) {
    if (!st.ok()) break;
    if (add) {
      g.members.insert(m);
      checker_.OnGroupJoin(g.id, m, before);
    } else {
      g.members.erase(m);
      checker_.OnGroupLeave(g.id, m, before);
    }
  }
  checker_.oracle().Resume();
  KGR_RETURN_IF_ERROR(st);
  Note("AC " + std::string(add ? "added" : "removed") + who + " " +
       (add ? "to " : "from ") + g.name + " (v" + std::to_string(before) +
       " -> v" + std::to_string(after) + ")");
  return OkStatus();
}

Status World::DeleteGroup(int gi) {
  if (!ks_.up) return UnavailableError("the KS is down");
  SimGroup& g = groups_[gi];
  const uint32_t before = GroupEpoch(g.id);
  checker_.oracle().Defer();
  AcGroupDeleteAns ans = ks_.server->DeleteGroup(AcGroupDeleteReq{g.name});
  if (ans.status == 0) {
    for (uint32_t m : g.members) checker_.OnGroupLeave(g.id, m, before);
  }
  checker_.oracle().Resume();
  KGR_RETURN_IF_ERROR(AnswerStatus(ans.status, ans.message));
  g.members.clear();
  g.deleted = true;
  Note("AC deleted group " + g.name + " at v" + std::to_string(before));
  return OkStatus();
}

void World::SendGroup(int a, uint32_t group_id, const std::string& payload) {
  SimNode& x = *nodes_[a];
  if (!x.up) return;
  std::string id =
      payload.empty() ? "g#" + std::to_string(++data_seq_) : payload;
  Count("op.group_send");
  Status st = x.client->SendGroup(group_id, SecretBytes(AsBytes(id)));
  Count("op.group_send." + Outcome(st));
  Note(x.name + " sends " + id + " to group " + FormatNodeId(group_id) + ": " +
       (st.ok() ? "ok" : st.ToString()));
}

}  // namespace kgr::sim
