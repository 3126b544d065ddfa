// Rekeys of a group: batches of joins and leaves, the lifetime policy, and
// the unicasts to one member (group_join, group_sync_ans). The group's
// record says who is a member; the key tree (libkgr/group/) follows it here,
// one commit (one group_rekey) for every change since the last.
#include "kgr/group_rekey.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <set>

#include "group/group_key_tree.h"
#include "kgr/ed25519.h"
#include "ks/context.h"
#include "ks/group_state.h"
#include "ks/internal.h"

namespace kgr::ks {
namespace {

StatusOr<group::GroupKeyTree> LoadTree(const GroupDesc& g) {
  if (g.tree.empty())
    return group::GroupKeyTree(g.group_id, &group::SystemKeySource());
  return group::GroupKeyTree::Deserialize(g.tree.span(),
                                          &group::SystemKeySource());
}

// Sends `n_id` its path of `tree` (Body: group_join at a join,
// group_sync_ans to a group_sync_req): false if the node cannot be reached
// now.
template <typename Body>
bool SendPath(Context& ctx, const GroupDesc& g, const group::GroupKeyTree& tree,
              uint32_t n_id, uint64_t request_id) {
  auto node = FindNode(ctx, n_id);
  if (!node.ok() || (*node)->state != NodeState::kRegistered) return false;
  auto path = tree.PathOf(n_id);
  auto signer = Ed25519FromSeed(g.sign_key.span());
  if (!path.ok() || !signer.ok()) {
    spdlog::error("ks: group {} path of {}: {}", FormatNodeId(g.group_id),
                  FormatNodeId(n_id),
                  (path.ok() ? signer.status() : path.status()).ToString());
    return false;
  }
  Body body;
  body.group_id = g.group_id;
  body.key_version = g.key_version;
  body.mode = g.mode;
  body.rekey_topic = g.rekey_topic;
  body.data_topic = g.data_topic;
  std::copy(signer->public_key.begin(), signer->public_key.end(),
            body.ks_sign_public.begin());
  Bytes encoded;
  path->EncodeTo(&encoded);
  body.path = SecretBytes(encoded);
  WipeVector(encoded);
  body.members = g.members;
  Status st = SendToNode(ctx, **node, request_id, 0, body);
  if (!st.ok()) {
    spdlog::warn("ks: group path to {} not sent: {}", FormatNodeId(n_id),
                 st.ToString());
    return false;
  }
  return true;
}

// Brings the group's key tree to its record's membership (and with
// `refresh` renews the group key): one commit, written (synced) before the
// rekey is published once and each joiner gets its path.
Status RekeyGroup(Context& ctx, uint32_t group_id, bool refresh) {
  KGR_ASSIGN_OR_RETURN(GroupDescStore * store, GroupStoreOf(ctx));
  KGR_ASSIGN_OR_RETURN(GroupDesc g, store->Get(group_id));
  KGR_ASSIGN_OR_RETURN(group::GroupKeyTree tree, LoadTree(g));
  std::set<uint32_t> want, joins;
  for (const GroupMember& m : g.members) want.insert(m.n_id);
  for (uint32_t m : tree.Members()) {
    if (!want.count(m)) KGR_RETURN_IF_ERROR(tree.StageLeave(m));
  }
  for (uint32_t m : want) {
    if (tree.Contains(m)) continue;
    KGR_RETURN_IF_ERROR(tree.StageJoin(m));
    joins.insert(m);
  }
  if (refresh && tree.size() > 0) tree.StageRefresh();
  if (!tree.HasStaged()) return OkStatus();
  KGR_ASSIGN_OR_RETURN(GroupRekey rekey, tree.Commit());
  if (g.sign_key.empty()) {
    KGR_ASSIGN_OR_RETURN(Ed25519KeyPair kp, GenerateEd25519());
    g.sign_key = std::move(kp.private_key);
  }
  KGR_ASSIGN_OR_RETURN(g.tree, tree.Serialize());
  g.key_version = tree.epoch();
  g.rekeyed_unix_ms = ctx.clock.NowUnixMillis();
  KGR_RETURN_IF_ERROR(store->Put(g));  // durable before anything goes out
  Groups(ctx).unsent_joins.erase(group_id);
  if (!rekey.entries.empty()) {
    auto frames = SealGroupRekey(
        rekey, ctx.own.identity.n_id, g.sign_key,
        [&ctx] { return ctx.counter.Next(ctx.clock.NowUnixMicros()); });
    if (!frames.ok()) return frames.status();
    const std::string topic = GroupTopicName(ctx.own.identity.topic_prefix,
                                             g.group_id, true, g.rekey_topic);
    for (const Bytes& f : *frames) {
      Status st = ctx.transport.Publish(topic, f);
      if (!st.ok()) spdlog::warn("ks: group_rekey not sent: {}", st.ToString());
    }
  }
  for (uint32_t m : joins) {
    if (!SendPath<GroupJoin>(ctx, g, tree, m, 0))
      Groups(ctx).unsent_joins[group_id].insert(m);
  }
  spdlog::info("ks: group '{}' rekeyed to version {} ({} joins, {} wraps)",
               g.name, g.key_version, joins.size(), rekey.entries.size());
  return OkStatus();
}

void RekeyLogged(Context& ctx, uint32_t group_id, bool refresh) {
  Status st = RekeyGroup(ctx, group_id, refresh);
  if (!st.ok()) {
    spdlog::error("ks: rekey of group {} failed: {}", FormatNodeId(group_id),
                  st.ToString());
  }
}

// Groups whose key is older than their lifetime get a new one; joins that
// could not be sent (the node was not registered yet) are sent again.
void RunLifetimePolicy(Context& ctx, GroupDescStore& store) {
  const uint64_t now_ms = ctx.clock.NowUnixMillis();
  std::vector<uint32_t> due;
  store.ForEach([&](const GroupDesc& g) {
    if (g.lifetime_s != 0 && !g.members.empty() &&
        now_ms >= g.rekeyed_unix_ms + uint64_t{g.lifetime_s} * 1000) {
      due.push_back(g.group_id);
    }
  });
  for (uint32_t id : due) RekeyLogged(ctx, id, /*refresh=*/true);
  auto unsent = std::move(Groups(ctx).unsent_joins);
  Groups(ctx).unsent_joins.clear();
  for (auto& [id, members] : unsent) {
    auto g = store.Get(id);
    if (!g.ok()) continue;
    auto tree = LoadTree(*g);
    if (!tree.ok()) continue;
    for (uint32_t m : members) {
      if (!tree->Contains(m)) continue;
      if (!SendPath<GroupJoin>(ctx, *g, *tree, m, 0))
        Groups(ctx).unsent_joins[id].insert(m);
    }
  }
}

}  // namespace

void QueueGroupChange(Context& ctx, uint32_t group_id, bool now) {
  GroupState& groups = Groups(ctx);
  if (now || ctx.options.group_batch_ms == 0) {
    groups.batches.erase(group_id);
    return RekeyLogged(ctx, group_id, false);
  }
  const uint64_t due =
      ctx.clock.NowMonotonicMillis() + ctx.options.group_batch_ms;
  groups.batches.emplace(group_id, due);  // an earlier batch keeps its time
}

void RunGroupRekeys(Context& ctx) {
  if (ctx.options.groups == nullptr) return;
  GroupState& groups = Groups(ctx);
  const uint64_t now = ctx.clock.NowMonotonicMillis();
  std::vector<uint32_t> due;
  for (const auto& [id, at] : groups.batches) {
    if (at <= now) due.push_back(id);
  }
  for (uint32_t id : due) {
    groups.batches.erase(id);
    RekeyLogged(ctx, id, false);
  }
  if (now >= groups.next_policy_check_ms) {
    groups.next_policy_check_ms = now + 1000;
    RunLifetimePolicy(ctx, *ctx.options.groups);
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
  if (!st.ok()) {
    spdlog::warn("ks: group_join (gone) to {} not sent: {}", FormatNodeId(n_id),
                 st.ToString());
  }
}

void HandleGroupSync(Context& ctx, const FrameHeader& h, const NodeDesc& node,
                     const GroupSyncReq& req) {
  GroupSyncAns gone;
  gone.group_id = req.group_id;
  auto answer_gone = [&] {
    Status st = SendToNode(ctx, node, h.request_id, 0, gone);
    if (!st.ok()) spdlog::warn("ks: group_sync_ans not sent: {}", st.message());
  };
  if (ctx.options.groups == nullptr) return answer_gone();
  auto g = ctx.options.groups->Get(req.group_id);
  auto member = g.ok() ? std::find_if(g->members.begin(), g->members.end(),
                                      [&](const GroupMember& m) {
                                        return m.n_id == node.n_id;
                                      })
                       : std::vector<GroupMember>::iterator{};
  if (!g.ok() || member == g->members.end()) {
    Drop(ctx, &h, DropReason::kUnexpected, "group_sync_req from a non-member");
    return answer_gone();
  }
  // The member's signing key: recorded once it sends one (sender
  // authentication), sent to the others with their next path.
  const std::array<uint8_t, kEd25519PublicSize> none{};
  if (req.sign_public != none && req.sign_public != member->sign_public) {
    member->sign_public = req.sign_public;
    Status st = ctx.options.groups->Put(*g);
    if (!st.ok()) spdlog::error("ks: member key not saved: {}", st.message());
  }
  auto tree = LoadTree(*g);
  if (!tree.ok() || !tree->Contains(node.n_id)) return;  // its join is queued
  SendPath<GroupSyncAns>(ctx, *g, *tree, node.n_id, h.request_id);
}

}  // namespace kgr::ks
