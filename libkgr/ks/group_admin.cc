// The AC's group requests (kgr-ac group create | add | remove | list |
// delete) and the revocation hook. An accepted join or leave is written as
// pending in the group's header and applied to the key tree at the next
// rekey (group_rekey.cc): a removal at once, joins when the batch window
// closes. Every check is made before anything is written, so a refused
// request leaves nothing behind.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <set>

#include "ks/context.h"
#include "ks/group_state.h"
#include "ks/group_table.h"
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

StatusOr<uint32_t> FreeGroupId(GroupDescStore& store) {
  for (int attempt = 0; attempt < 16; ++attempt) {
    KGR_ASSIGN_OR_RETURN(uint32_t id, RandomU32());
    if (id != 0 && !store.Contains(id)) return id;
  }
  return InternalError("could not draw a free group id");
}

// Records `changes` as pending in the header (durable) when they fit, and
// rekeys now with `now` or when they do not.
Status ApplyChanges(Context& ctx, LoadedGroup& g,
                    std::vector<GroupChange> changes, bool now) {
  if (g.header.pending.size() + changes.size() > kMaxGroupPending) {
    Groups(ctx).batches.erase(g.header.group_id);
    return RekeyGroup(ctx, g, std::move(changes), false);
  }
  g.header.pending.insert(g.header.pending.end(), changes.begin(),
                          changes.end());
  g.Changed();
  Status st = ctx.options.groups->Put(g.header);
  if (!st.ok()) {
    ForgetGroup(ctx, g.header.group_id);
    return st;
  }
  QueueGroupChange(ctx, g.header.group_id, now);
  return OkStatus();
}

}  // namespace

GroupState& Groups(Context& ctx) {
  if (!ctx.groups) ctx.groups = std::make_shared<GroupState>();
  return *ctx.groups;
}

StatusOr<GroupDescStore*> GroupStoreOf(Context& ctx) {
  if (ctx.options.groups == nullptr)
    return FailedPreconditionError(
        "this key server keeps no groups (a KS cluster or a KS on etcd "
        "serves no groups yet: docs/cluster.md)");
  return ctx.options.groups;
}

StatusOr<LoadedGroup*> GroupOf(Context& ctx, uint32_t group_id) {
  KGR_ASSIGN_OR_RETURN(GroupDescStore * store, GroupStoreOf(ctx));
  auto& loaded = Groups(ctx).loaded;
  auto it = loaded.find(group_id);
  if (it != loaded.end()) return it->second.get();
  KGR_ASSIGN_OR_RETURN(LoadedGroup g, LoadGroupRecords(*store, group_id));
  auto made = std::make_unique<LoadedGroup>(std::move(g));
  LoadedGroup* out = made.get();
  loaded.emplace(group_id, std::move(made));
  return out;
}

void ForgetGroup(Context& ctx, uint32_t group_id) {
  Groups(ctx).loaded.erase(group_id);
}

StatusOr<LoadedGroup*> FindGroupByName(Context& ctx, std::string_view name) {
  KGR_ASSIGN_OR_RETURN(GroupDescStore * store, GroupStoreOf(ctx));
  for (uint32_t id : GroupIds(*store)) {
    auto g = GroupOf(ctx, id);
    if (g.ok() && (*g)->header.name == name) return *g;
  }
  return NotFoundError("unknown group '" + std::string(name) + "'");
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
  auto id = FreeGroupId(**store);
  auto rekey = RandomTopicId();
  auto data = RandomTopicId();
  if (!id.ok() || !rekey.ok() || !data.ok())
    return Refuse<AcGroupCreateAns>(InternalError("no randomness"));
  auto made = std::make_unique<LoadedGroup>(
      group::GroupKeyTree(*id, &group::SystemKeySource()));
  GroupDesc& h = made->header;
  h.group_id = *id;
  h.name = req.name;
  h.mode = req.mode;
  h.lifetime_s = req.lifetime_s;
  h.rekey_topic = *rekey;
  h.data_topic = *data;
  st = (*store)->Put(h);
  if (!st.ok()) return Refuse<AcGroupCreateAns>(st);
  LoadedGroup& g = *made;
  Groups(ctx).loaded[*id] = std::move(made);
  std::vector<GroupChange> joins;
  for (uint32_t m : req.members) joins.push_back({m, true, {}});
  st = RekeyGroup(ctx, g, std::move(joins), false);
  spdlog::info("ks: group '{}' ({}) created with {} members", req.name,
               FormatNodeId(*id), req.members.size());
  AcGroupCreateAns ans;
  if (!st.ok()) {
    ans = Refuse<AcGroupCreateAns>(st);
  } else {
    ans.key_version = g.header.key_version;
  }
  ans.group_id = *id;
  return ans;
}

AcGroupMembersAns ChangeGroupMembers(Context& ctx,
                                     const AcGroupMembersReq& req) {
  auto found = FindGroupByName(ctx, req.name);
  if (!found.ok()) return Refuse<AcGroupMembersAns>(found.status());
  LoadedGroup& g = **found;
  Status st = req.add ? CheckNodes(ctx, req.members) : OkStatus();
  std::set<uint32_t> seen;
  for (uint32_t m : req.members) {
    if (!st.ok()) break;
    if (!seen.insert(m).second)
      st = InvalidArgumentError("node " + FormatNodeId(m) + " given twice");
    else if (req.add && g.IsMember(m))
      st =
          AlreadyExistsError("node " + FormatNodeId(m) +
                             " is already a member of '" + g.header.name + "'");
    else if (!req.add && !g.IsMember(m))
      st = NotFoundError("node " + FormatNodeId(m) + " is not a member of '" +
                         g.header.name + "'");
  }
  if (st.ok() && req.add &&
      g.MemberCount() + req.members.size() > kMaxGroupMembers) {
    st = ResourceExhaustedError("a group has at most " +
                                std::to_string(kMaxGroupMembers) + " members");
  }
  if (!st.ok()) return Refuse<AcGroupMembersAns>(st);
  std::vector<GroupChange> changes;
  for (uint32_t m : req.members) changes.push_back({m, req.add != 0, {}});
  const GroupDesc header = g.header.Clone();  // `g` may be forgotten
  // A removal is immediate; joins wait for the batch window.
  st = ApplyChanges(ctx, g, std::move(changes), /*now=*/!req.add);
  if (!st.ok()) return Refuse<AcGroupMembersAns>(st);
  spdlog::info("ks: group '{}': {} {} member(s)", header.name,
               req.add ? "added" : "removed", req.members.size());
  if (!req.add) {
    for (uint32_t m : req.members) SendGroupGone(ctx, header, m);
  }
  AcGroupMembersAns ans;
  ans.group_id = header.group_id;
  auto after = GroupOf(ctx, header.group_id);
  ans.key_version =
      after.ok() ? (*after)->header.key_version : header.key_version;
  return ans;
}

AcGroupDeleteAns DeleteGroup(Context& ctx, const AcGroupDeleteReq& req) {
  auto found = FindGroupByName(ctx, req.name);
  if (!found.ok()) return Refuse<AcGroupDeleteAns>(found.status());
  const GroupDesc header = (*found)->header.Clone();
  const std::vector<GroupMember> members = (*found)->Members();
  auto batch = ctx.options.groups->NewBatch();
  AddGroupDeletes(*ctx.options.groups, header.group_id, &batch);
  Status st = ctx.options.groups->Apply(std::move(batch));
  ForgetGroup(ctx, header.group_id);
  if (!st.ok()) return Refuse<AcGroupDeleteAns>(st);
  Groups(ctx).batches.erase(header.group_id);
  for (const GroupMember& m : members) SendGroupGone(ctx, header, m.n_id);
  spdlog::info("ks: group '{}' ({}) deleted", header.name,
               FormatNodeId(header.group_id));
  AcGroupDeleteAns ans;
  ans.group_id = header.group_id;
  return ans;
}

AcGroupListAns ListGroups(Context& ctx, const AcGroupListReq& req) {
  AcGroupListAns page;
  auto store = GroupStoreOf(ctx);
  if (!store.ok()) {
    page.status = static_cast<uint8_t>(store.status().code());
    return page;
  }
  const size_t limit = ctx.options.ac_list_page_bytes;
  size_t bytes = 4;
  const std::vector<uint32_t> ids = GroupIds(**store);
  auto it = req.member_after != 0
                ? std::lower_bound(ids.begin(), ids.end(), req.after)
                : std::upper_bound(ids.begin(), ids.end(), req.after);
  for (; it != ids.end(); ++it) {
    auto g = GroupOf(ctx, *it);
    if (!g.ok()) continue;
    const GroupDesc& h = (*g)->header;
    const size_t head = 20 + h.name.size();
    if (!page.groups.empty() && bytes + head + 4 > limit) {
      page.more = 1;
      break;
    }
    AcGroupListAns::Entry e{h.group_id,   h.name,        h.mode,
                            h.lifetime_s, h.key_version, {}};
    bytes += head;
    const auto& members = (*g)->Members();
    auto m = members.begin();
    if (req.member_after != 0 && *it == req.after) {
      m = std::upper_bound(
          members.begin(), members.end(), req.member_after,
          [](uint32_t id, const GroupMember& x) { return id < x.n_id; });
    }
    for (; m != members.end(); ++m) {
      if ((bytes + 4 > limit && !e.members.empty()) ||
          e.members.size() == 0xFFFF) {
        page.more = 2;
        break;
      }
      bytes += 4;
      e.members.push_back(m->n_id);
    }
    page.groups.push_back(std::move(e));
    if (page.more != 0) break;
  }
  return page;
}

int RemoveFromAllGroups(Context& ctx, uint32_t n_id) {
  if (ctx.options.groups == nullptr) return 0;
  int removed = 0;
  for (uint32_t id : GroupIds(*ctx.options.groups)) {
    auto g = GroupOf(ctx, id);
    if (!g.ok() || !(*g)->IsMember(n_id)) continue;
    const std::string name = (*g)->header.name;
    Status st = ApplyChanges(ctx, **g, {{n_id, false, {}}}, /*now=*/true);
    if (!st.ok()) {
      spdlog::error("ks: revoked node {} not removed from group '{}': {}",
                    FormatNodeId(n_id), name, st.ToString());
      continue;
    }
    ++removed;
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
          [&](const AcGroupListReq& r) { return ListGroups(ctx, r); });
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
AcGroupListAns KeyServer::ListGroups(uint32_t after, uint32_t member_after) {
  return ks::ListGroups(*ctx_, AcGroupListReq{after, member_after});
}

}  // namespace kgr
