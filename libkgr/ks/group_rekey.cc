// Rekeys of a group: batches of joins and leaves, the lifetime policy, and
// the unicasts to one member (group_join, group_sync_ans). The header's
// pending changes say who joins and leaves; the key tree (libkgr/group/)
// follows them here, one commit (one group_rekey) for every change since
// the last (several for very many changes: one commit's writes are
// bounded).
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

// One commit writes at most this many bytes of pieces (well below the
// store's commit bound, kMaxCommitGroupBytes).
constexpr size_t kMaxCommitPieceBytes = 2 << 20;
constexpr size_t kPieceBytes = kMaxGroupTreePiece + 128;

// Sends `n_id` its path of `g`'s tree (Body: group_join at a join,
// group_sync_ans to a group_sync_req): false if the node cannot be reached
// now.
template <typename Body>
bool SendPath(Context& ctx, const LoadedGroup& g, uint32_t n_id,
              uint64_t request_id) {
  auto node = FindNode(ctx, n_id);
  if (!node.ok() || (*node)->state != NodeState::kRegistered) return false;
  const GroupDesc& h = g.header;
  auto path = g.tree.PathOf(n_id);
  auto signer = Ed25519FromSeed(h.sign_key.span());
  if (!path.ok() || !signer.ok()) {
    spdlog::error("ks: group {} path of {}: {}", FormatNodeId(h.group_id),
                  FormatNodeId(n_id),
                  (path.ok() ? signer.status() : path.status()).ToString());
    return false;
  }
  Body body;
  body.group_id = h.group_id;
  body.key_version = h.key_version;
  body.mode = h.mode;
  body.rekey_topic = h.rekey_topic;
  body.data_topic = h.data_topic;
  std::copy(signer->public_key.begin(), signer->public_key.end(),
            body.ks_sign_public.begin());
  Bytes encoded;
  path->EncodeTo(&encoded);
  body.path = SecretBytes(encoded);
  WipeVector(encoded);
  body.members = g.Members();
  Status st = SendToNode(ctx, **node, request_id, 0, body);
  if (!st.ok()) {
    spdlog::warn("ks: group path to {} not sent: {}", FormatNodeId(n_id),
                 st.ToString());
    return false;
  }
  return true;
}

void Publish(Context& ctx, const LoadedGroup& g, const GroupRekey& rekey) {
  if (rekey.entries.empty()) return;
  auto frames = SealGroupRekey(
      rekey, ctx.own.identity.n_id, g.header.sign_key,
      [&ctx] { return ctx.counter.Next(ctx.clock.NowUnixMicros()); });
  if (!frames.ok()) {
    spdlog::error("ks: group_rekey not sealed: {}", frames.status().message());
    return;
  }
  const std::string topic =
      GroupTopicName(ctx.own.identity.topic_prefix, g.header.group_id, true,
                     g.header.rekey_topic);
  for (const Bytes& f : *frames) {
    Status st = ctx.transport.Publish(topic, f);
    if (!st.ok()) spdlog::warn("ks: group_rekey not sent: {}", st.ToString());
  }
}

// The pieces a commit of what is staged would write, at most.
size_t StagedPieceCount(const LoadedGroup& g, const std::set<uint32_t>& slots) {
  std::set<uint32_t> member_pieces;
  for (uint32_t s : slots) member_pieces.insert(s / kGroupMemberPieceSlots);
  return g.tree.StagedPieces().size() + member_pieces.size() + 1;
}

// Stages changes[*next..] on the tree until a commit would write too many
// pieces; the member slots they touch go to `slots`, the joiners to `joins`.
Status StageSome(LoadedGroup& g, const std::vector<GroupChange>& changes,
                 size_t* next, std::set<uint32_t>* slots,
                 std::set<uint32_t>* joins) {
  constexpr size_t kBudget = kMaxCommitPieceBytes / kPieceBytes;
  size_t estimate = 1;  // pieces, never below the exact count
  for (; *next < changes.size(); ++*next) {
    estimate += g.tree.depth() + 3;  // a path, its member piece, a growth
    if (estimate > kBudget) {
      estimate = StagedPieceCount(g, *slots) + g.tree.depth() + 3;
      if (estimate > kBudget) break;
    }
    const GroupChange& c = changes[*next];
    if (c.join && !g.tree.Contains(c.n_id)) {
      KGR_RETURN_IF_ERROR(g.tree.StageJoin(c.n_id));
      g.sign_keys[c.n_id] = c.sign_public;
      joins->insert(c.n_id);
      slots->insert(*g.tree.PositionOf(c.n_id));
    } else if (!c.join && g.tree.Contains(c.n_id)) {
      slots->insert(*g.tree.PositionOf(c.n_id));
      KGR_RETURN_IF_ERROR(g.tree.StageLeave(c.n_id));
      g.sign_keys.erase(c.n_id);
      joins->erase(c.n_id);
    }
  }
  return OkStatus();
}

// One commit of what is staged: written (synced) before the rekey is
// published once and each joiner gets its path.
Status CommitStaged(Context& ctx, LoadedGroup& g, std::vector<GroupChange> rest,
                    const std::set<uint32_t>& slots,
                    const std::set<uint32_t>& joins) {
  KGR_ASSIGN_OR_RETURN(GroupRekey rekey, g.tree.Commit());
  GroupDesc& h = g.header;
  if (h.sign_key.empty()) {
    KGR_ASSIGN_OR_RETURN(Ed25519KeyPair kp, GenerateEd25519());
    h.sign_key = std::move(kp.private_key);
  }
  const auto shape = g.tree.shape();
  h.key_version = shape.epoch;
  h.tree_depth = shape.depth;
  h.tree_slots = shape.slots;
  h.member_count = static_cast<uint32_t>(g.tree.size());
  h.rekeyed_unix_ms = ctx.clock.NowUnixMillis();
  h.pending = std::move(rest);
  g.Changed();
  KGR_ASSIGN_OR_RETURN(GroupDescStore * store, GroupStoreOf(ctx));
  auto batch = store->NewBatch();
  KGR_RETURN_IF_ERROR(AddGroupWrites(g, slots, &batch));
  KGR_RETURN_IF_ERROR(store->Apply(std::move(batch)));  // durable first
  Publish(ctx, g, rekey);
  Groups(ctx).unsent_joins.erase(h.group_id);
  for (uint32_t m : joins) {
    if (!SendPath<GroupJoin>(ctx, g, m, 0))
      Groups(ctx).unsent_joins[h.group_id].insert(m);
  }
  spdlog::info("ks: group '{}' rekeyed to version {} ({} joins, {} wraps)",
               h.name, h.key_version, joins.size(), rekey.entries.size());
  return OkStatus();
}

void RekeyLogged(Context& ctx, uint32_t group_id, bool refresh) {
  auto g = GroupOf(ctx, group_id);
  Status st = g.ok() ? RekeyGroup(ctx, **g, {}, refresh) : g.status();
  if (!st.ok()) {
    spdlog::error("ks: rekey of group {} failed: {}", FormatNodeId(group_id),
                  st.ToString());
  }
}

// Groups whose key is older than their lifetime get a new one; at the first
// check after start, written changes whose batch was lost (a KS restart)
// are batched again; joins that could not be sent (the node was not
// registered yet) are sent again.
void RunLifetimePolicy(Context& ctx, GroupDescStore& store) {
  const uint64_t now_ms = ctx.clock.NowUnixMillis();
  std::vector<uint32_t> due;
  std::vector<uint32_t> unbatched;
  for (uint32_t id : GroupIds(store)) {
    auto g = GroupOf(ctx, id);
    if (!g.ok()) continue;
    const GroupDesc& h = (*g)->header;
    // Written changes without a batch at start: the KS restarted inside
    // the window.
    if (!Groups(ctx).restart_batches_queued && !h.pending.empty() &&
        !Groups(ctx).batches.contains(id)) {
      unbatched.push_back(id);
    }
    if (h.lifetime_s != 0 && (*g)->tree.size() > 0 &&
        now_ms >= h.rekeyed_unix_ms + uint64_t{h.lifetime_s} * 1000) {
      due.push_back(id);
    }
  }
  for (uint32_t id : due) RekeyLogged(ctx, id, /*refresh=*/true);
  Groups(ctx).restart_batches_queued = true;
  for (uint32_t id : unbatched) QueueGroupChange(ctx, id, /*now=*/false);
  auto unsent = std::move(Groups(ctx).unsent_joins);
  Groups(ctx).unsent_joins.clear();
  for (auto& [id, members] : unsent) {
    auto g = GroupOf(ctx, id);
    if (!g.ok()) continue;
    for (uint32_t m : members) {
      if (!(*g)->tree.Contains(m)) continue;
      if (!SendPath<GroupJoin>(ctx, **g, m, 0))
        Groups(ctx).unsent_joins[id].insert(m);
    }
  }
}

}  // namespace

Status RekeyGroup(Context& ctx, LoadedGroup& g, std::vector<GroupChange> extra,
                  bool refresh) {
  const uint32_t group_id = g.header.group_id;
  std::vector<GroupChange> changes = g.header.pending;
  const size_t written = changes.size();
  changes.insert(changes.end(), extra.begin(), extra.end());
  size_t next = 0;
  do {
    std::set<uint32_t> slots, joins;
    Status st = StageSome(g, changes, &next, &slots, &joins);
    if (st.ok() && refresh && g.tree.size() > 0) g.tree.StageRefresh();
    refresh = false;
    if (st.ok() && !g.tree.HasStaged()) {
      if (next < changes.size()) continue;  // no-ops so far: go on
      if (g.header.pending.empty()) break;
      g.header.pending.clear();  // nothing left to do: only the header
      g.Changed();
      KGR_ASSIGN_OR_RETURN(GroupDescStore * store, GroupStoreOf(ctx));
      st = store->Put(g.header);
    } else if (st.ok()) {
      std::vector<GroupChange> rest;
      for (size_t i = next; i < written; ++i) rest.push_back(changes[i]);
      st = CommitStaged(ctx, g, std::move(rest), slots, joins);
    }
    if (!st.ok()) {
      ForgetGroup(ctx, group_id);  // reloaded from its records
      return st;
    }
  } while (next < changes.size());
  return OkStatus();
}

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

namespace {

// group_id 0: "which groups am I in" (a member whose group_join was lost):
// one group_sync_ans per group whose key tree holds the node, none if it is
// in no group.
void SyncAllGroups(Context& ctx, const FrameHeader& h, const NodeDesc& node) {
  if (ctx.options.groups == nullptr) return;
  for (uint32_t id : GroupIds(*ctx.options.groups)) {
    auto found = GroupOf(ctx, id);
    if (!found.ok() || !(*found)->tree.Contains(node.n_id)) continue;
    SendPath<GroupSyncAns>(ctx, **found, node.n_id, h.request_id);
  }
}

}  // namespace

void HandleGroupSync(Context& ctx, const FrameHeader& h, const NodeDesc& node,
                     const GroupSyncReq& req) {
  if (req.group_id == 0) return SyncAllGroups(ctx, h, node);
  GroupSyncAns gone;
  gone.group_id = req.group_id;
  auto answer_gone = [&] {
    Status st = SendToNode(ctx, node, h.request_id, 0, gone);
    if (!st.ok()) spdlog::warn("ks: group_sync_ans not sent: {}", st.message());
  };
  if (ctx.options.groups == nullptr) return answer_gone();
  auto found = GroupOf(ctx, req.group_id);
  if (!found.ok() || !(*found)->IsMember(node.n_id)) {
    Drop(ctx, &h, DropReason::kUnexpected, "group_sync_req from a non-member");
    return answer_gone();
  }
  LoadedGroup& g = **found;
  // The member's signing key: recorded once it sends one (sender
  // authentication), sent to the others with their next path.
  const SignPublic none{};
  if (req.sign_public != none) {
    Status st = RecordSignKey(ctx, g, node.n_id, req.sign_public);
    if (!st.ok()) spdlog::error("ks: member key not saved: {}", st.message());
  }
  if (!g.tree.Contains(node.n_id)) return;  // its join is queued
  SendPath<GroupSyncAns>(ctx, g, node.n_id, h.request_id);
}

Status RecordSignKey(Context& ctx, LoadedGroup& g, uint32_t n_id,
                     const SignPublic& key) {
  KGR_ASSIGN_OR_RETURN(GroupDescStore * store, GroupStoreOf(ctx));
  for (GroupChange& c : g.header.pending) {
    if (c.n_id == n_id && c.join && c.sign_public != key) {
      c.sign_public = key;
      g.Changed();
      Status st = store->Put(g.header);
      if (!st.ok()) ForgetGroup(ctx, g.header.group_id);
      return st;
    }
  }
  auto it = g.sign_keys.find(n_id);
  if (it == g.sign_keys.end() || it->second == key) return OkStatus();
  it->second = key;
  g.Changed();
  auto batch = store->NewBatch();
  KGR_ASSIGN_OR_RETURN(uint32_t slot, g.tree.PositionOf(n_id));
  KGR_RETURN_IF_ERROR(AddGroupMemberPiece(g, slot, &batch));
  Status st = store->Apply(std::move(batch));
  if (!st.ok()) ForgetGroup(ctx, g.header.group_id);
  return st;
}

}  // namespace kgr::ks
