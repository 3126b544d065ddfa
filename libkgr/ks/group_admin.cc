// The AC's group requests (kgr-ac group create | add | remove | list |
// delete) and the revocation hook. The group record's member list is what
// the KS enforces; the key tree follows it at the next rekey
// (group_rekey.cc). Every check is made before anything is written, so a
// refused request leaves nothing behind.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <set>

#include "ks/context.h"
#include "ks/group_state.h"
#include "ks/internal.h"

namespace kgr::ks {
namespace {

template <typename Ans>
Ans Refuse(const Status& st) {
  Ans a;
  a.status = static_cast<uint8_t>(st.code());
  a.message = st.message();
  spdlog::warn("ks: group request refused: {}", st.message());
  return a;
}

// Each of `ids` is a node the AC authorized and did not revoke.
Status CheckNodes(Context& ctx, const std::vector<uint32_t>& ids) {
  std::set<uint32_t> seen;
  for (uint32_t id : ids) {
    if (!seen.insert(id).second)
      return InvalidArgumentError("node " + FormatNodeId(id) + " given twice");
    auto node = FindNode(ctx, id);
    if (!node.ok())
      return NotFoundError("node " + FormatNodeId(id) + " is not authorized");
    if ((*node)->state == NodeState::kRevoked)
      return FailedPreconditionError("node " + FormatNodeId(id) +
                                     " is revoked");
  }
  return OkStatus();
}

bool IsMember(const GroupDesc& g, uint32_t n_id) {
  return std::any_of(g.members.begin(), g.members.end(),
                     [n_id](const GroupMember& m) { return m.n_id == n_id; });
}

void SortMembers(GroupDesc& g) {
  std::sort(g.members.begin(), g.members.end(),
            [](const GroupMember& a, const GroupMember& b) {
              return a.n_id < b.n_id;
            });
}

StatusOr<uint32_t> FreeGroupId(GroupDescStore& store) {
  for (int attempt = 0; attempt < 16; ++attempt) {
    KGR_ASSIGN_OR_RETURN(uint32_t id, RandomU32());
    if (id != 0 && !store.Contains(id)) return id;
  }
  return InternalError("could not draw a free group id");
}

}  // namespace

GroupState& Groups(Context& ctx) {
  if (!ctx.groups) ctx.groups = std::make_shared<GroupState>();
  return *ctx.groups;
}

StatusOr<GroupDescStore*> GroupStoreOf(Context& ctx) {
  if (ctx.options.groups == nullptr)
    return FailedPreconditionError("this key server keeps no groups");
  return ctx.options.groups;
}

StatusOr<GroupDesc> FindGroupByName(Context& ctx, std::string_view name) {
  KGR_ASSIGN_OR_RETURN(GroupDescStore * store, GroupStoreOf(ctx));
  std::optional<uint32_t> found;
  store->ForEach([&](const GroupDesc& g) {
    if (g.name == name) found = g.group_id;
  });
  if (!found) return NotFoundError("unknown group '" + std::string(name) + "'");
  return store->Get(*found);
}

AcGroupCreateAns CreateGroup(Context& ctx, const AcGroupCreateReq& req) {
  auto store = GroupStoreOf(ctx);
  if (!store.ok()) return Refuse<AcGroupCreateAns>(store.status());
  if (FindGroupByName(ctx, req.name).ok()) {
    return Refuse<AcGroupCreateAns>(
        AlreadyExistsError("a group '" + req.name + "' exists already"));
  }
  Status st = CheckNodes(ctx, req.members);
  if (!st.ok()) return Refuse<AcGroupCreateAns>(st);
  GroupDesc g;
  auto id = FreeGroupId(**store);
  auto rekey = RandomTopicId();
  auto data = RandomTopicId();
  if (!id.ok() || !rekey.ok() || !data.ok())
    return Refuse<AcGroupCreateAns>(InternalError("no randomness"));
  g.group_id = *id;
  g.name = req.name;
  g.mode = req.mode;
  g.lifetime_s = req.lifetime_s;
  g.rekey_topic = *rekey;
  g.data_topic = *data;
  for (uint32_t m : req.members) g.members.push_back({m, {}});
  SortMembers(g);
  st = (*store)->Put(g);
  if (!st.ok()) return Refuse<AcGroupCreateAns>(st);
  spdlog::info("ks: group '{}' ({}) created with {} members", g.name,
               FormatNodeId(g.group_id), g.members.size());
  QueueGroupChange(ctx, g.group_id, /*now=*/true);
  AcGroupCreateAns ans;
  ans.group_id = g.group_id;
  auto after = (*store)->Get(g.group_id);
  ans.key_version = after.ok() ? after->key_version : 0;
  return ans;
}

AcGroupMembersAns ChangeGroupMembers(Context& ctx,
                                     const AcGroupMembersReq& req) {
  auto found = FindGroupByName(ctx, req.name);
  if (!found.ok()) return Refuse<AcGroupMembersAns>(found.status());
  GroupDesc& g = *found;
  Status st = req.add ? CheckNodes(ctx, req.members) : OkStatus();
  for (uint32_t m : req.members) {
    if (!st.ok()) break;
    if (req.add && IsMember(g, m))
      st = AlreadyExistsError("node " + FormatNodeId(m) +
                              " is already a member of '" + g.name + "'");
    if (!req.add && !IsMember(g, m))
      st = NotFoundError("node " + FormatNodeId(m) + " is not a member of '" +
                         g.name + "'");
  }
  if (st.ok() && req.add &&
      g.members.size() + req.members.size() > kMaxGroupMembers) {
    st = ResourceExhaustedError("a group has at most " +
                                std::to_string(kMaxGroupMembers) + " members");
  }
  if (!st.ok()) return Refuse<AcGroupMembersAns>(st);
  const std::set<uint32_t> changed(req.members.begin(), req.members.end());
  if (req.add) {
    for (uint32_t m : req.members) g.members.push_back({m, {}});
    SortMembers(g);
  } else {
    std::erase_if(g.members,
                  [&](const GroupMember& m) { return changed.count(m.n_id); });
  }
  st = ctx.options.groups->Put(g);
  if (!st.ok()) return Refuse<AcGroupMembersAns>(st);
  spdlog::info("ks: group '{}': {} {} member(s)", g.name,
               req.add ? "added" : "removed", req.members.size());
  // A removal is immediate; joins wait for the batch window.
  QueueGroupChange(ctx, g.group_id, /*now=*/!req.add);
  if (!req.add) {
    for (uint32_t m : changed) SendGroupGone(ctx, g, m);
  }
  AcGroupMembersAns ans;
  ans.group_id = g.group_id;
  auto after = ctx.options.groups->Get(g.group_id);
  ans.key_version = after.ok() ? after->key_version : g.key_version;
  return ans;
}

AcGroupDeleteAns DeleteGroup(Context& ctx, const AcGroupDeleteReq& req) {
  auto found = FindGroupByName(ctx, req.name);
  if (!found.ok()) return Refuse<AcGroupDeleteAns>(found.status());
  Status st = ctx.options.groups->Delete(found->group_id);
  if (!st.ok()) return Refuse<AcGroupDeleteAns>(st);
  Groups(ctx).batches.erase(found->group_id);
  for (const GroupMember& m : found->members)
    SendGroupGone(ctx, *found, m.n_id);
  spdlog::info("ks: group '{}' ({}) deleted", found->name,
               FormatNodeId(found->group_id));
  AcGroupDeleteAns ans;
  ans.group_id = found->group_id;
  return ans;
}

AcGroupListAns ListGroups(Context& ctx, uint32_t after) {
  AcGroupListAns page;
  auto store = GroupStoreOf(ctx);
  if (!store.ok()) {
    page.status = static_cast<uint8_t>(store.status().code());
    return page;
  }
  size_t bytes = 4;
  std::vector<uint32_t> ids = (*store)->List();
  std::sort(ids.begin(), ids.end());
  for (auto it = std::upper_bound(ids.begin(), ids.end(), after);
       it != ids.end(); ++it) {
    auto g = (*store)->Get(*it);
    if (!g.ok()) continue;
    AcGroupListAns::Entry e{g->group_id,   g->name,        g->mode,
                            g->lifetime_s, g->key_version, {}};
    for (const GroupMember& m : g->members) e.members.push_back(m.n_id);
    const size_t size = 20 + e.name.size() + 4 * e.members.size();
    if (!page.groups.empty() && bytes + size > ctx.options.ac_list_page_bytes) {
      page.more = 1;
      break;
    }
    bytes += size;
    page.groups.push_back(std::move(e));
  }
  return page;
}

int RemoveFromAllGroups(Context& ctx, uint32_t n_id) {
  if (ctx.options.groups == nullptr) return 0;
  std::vector<GroupDesc> changed;
  ctx.options.groups->ForEach([&](const GroupDesc& g) {
    if (IsMember(g, n_id)) changed.push_back(g.Clone());
  });
  int removed = 0;
  for (GroupDesc& g : changed) {
    std::erase_if(g.members,
                  [n_id](const GroupMember& m) { return m.n_id == n_id; });
    Status st = ctx.options.groups->Put(g);
    if (!st.ok()) {
      spdlog::error("ks: revoked node {} not removed from group '{}': {}",
                    FormatNodeId(n_id), g.name, st.ToString());
      continue;
    }
    ++removed;
    QueueGroupChange(ctx, g.group_id, /*now=*/true);
  }
  return removed;
}

namespace {

template <typename Req, typename Fn>
bool Answer(Context& ctx, const FrameHeader& h, std::span<const uint8_t> body,
            Bytes* reply_body, FrameType* reply_type, Fn answer) {
  auto req = Req::Parse(body);
  if (!req.ok()) {
    Drop(ctx, &h, DropReason::kMalformed, req.status().message());
    return false;
  }
  auto ans = answer(*req);
  ans.EncodeTo(reply_body);
  *reply_type = decltype(ans)::kType;
  return true;
}

}  // namespace

bool AnswerGroupAc(Context& ctx, const FrameHeader& h,
                   std::span<const uint8_t> body, Bytes* reply_body,
                   FrameType* reply_type) {
  switch (h.type) {
    case FrameType::kAcGroupCreateReq:
      return Answer<AcGroupCreateReq>(
          ctx, h, body, reply_body, reply_type,
          [&](const AcGroupCreateReq& r) { return CreateGroup(ctx, r); });
    case FrameType::kAcGroupMembersReq:
      return Answer<AcGroupMembersReq>(ctx, h, body, reply_body, reply_type,
                                       [&](const AcGroupMembersReq& r) {
                                         return ChangeGroupMembers(ctx, r);
                                       });
    case FrameType::kAcGroupListReq:
      return Answer<AcGroupListReq>(
          ctx, h, body, reply_body, reply_type,
          [&](const AcGroupListReq& r) { return ListGroups(ctx, r.after); });
    case FrameType::kAcGroupDeleteReq:
      return Answer<AcGroupDeleteReq>(
          ctx, h, body, reply_body, reply_type,
          [&](const AcGroupDeleteReq& r) { return DeleteGroup(ctx, r); });
    default:
      Drop(ctx, &h, DropReason::kUnexpected, "not an AC request");
      return false;
  }
}

}  // namespace kgr::ks

namespace kgr {

AcGroupCreateAns KeyServer::CreateGroup(const AcGroupCreateReq& req) {
  return ks::CreateGroup(*ctx_, req);
}
AcGroupMembersAns KeyServer::ChangeGroupMembers(const AcGroupMembersReq& req) {
  return ks::ChangeGroupMembers(*ctx_, req);
}
AcGroupDeleteAns KeyServer::DeleteGroup(const AcGroupDeleteReq& req) {
  return ks::DeleteGroup(*ctx_, req);
}
AcGroupListAns KeyServer::ListGroups(uint32_t after) {
  return ks::ListGroups(*ctx_, after);
}

}  // namespace kgr
