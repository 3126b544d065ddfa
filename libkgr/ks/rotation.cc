#include <spdlog/spdlog.h>

#include <algorithm>

#include "kgr/key_server.h"
#include "ks/context.h"
#include "ks/internal.h"

namespace kgr::ks {

void HandleRotation(Context& ctx, const FrameHeader& h, const NodeDesc& node,
                    bool under_prev, const NkskRotReq& req) {
  // A retransmitted request (the node has not got our answer, or our answer
  // crossed its retransmission) comes under the previous NKSK with the same
  // id and key: the same answer again, since the node may already hold the
  // pair it gives. A new request under the previous NKSK (the node gave up
  // the last one) agrees again, replacing the unconfirmed new pair.
  auto same = ctx.rotations.find(node.n_id);
  if (under_prev && same != ctx.rotations.end() &&
      same->second.request_id == h.request_id &&
      same->second.node_public == req.node_public &&
      same->second.version == node.nksk_version) {
    Status st =
        SendToNode(ctx, node, h.request_id, 0,
                   NkskRotAns{same->second.ks_public, node.nksk_version});
    if (!st.ok()) spdlog::warn("ks: nksk_rot_ans not sent: {}", st.ToString());
    return;
  }
  // Rotation ids grow per node like key request ids and share their floor:
  // an id at or below it is a late copy of an older (abandoned) request,
  // which must never replace the pair a later answer gave the node.
  uint64_t& floor = ctx.request_floors[node.n_id];
  floor = std::max(floor, node.request_floor);
  if (h.request_id <= floor)
    return Drop(ctx, &h, DropReason::kReplay, "stale rotation request");
  auto ks_key = GenerateX25519();
  if (!ks_key.ok()) return;
  auto shared = X25519SharedSecret(ks_key->private_key, req.node_public);
  if (!shared.ok())
    return Drop(ctx, &h, DropReason::kMalformed, shared.status().message());
  uint32_t version = under_prev ? node.nksk_version : node.nksk_version + 1;
  auto keys = RotationKeys(*shared, node.n_id, version, req.node_public,
                           ks_key->public_key);
  if (!keys.ok()) return;
  // Durable before the answer, over the record as stored: only if the
  // node still holds the pair the request came under (no other instance
  // rotated it meanwhile) and no later request id is finished.
  const SymmetricKeys& used = under_prev ? node.prev_nksk : node.nksk;
  std::vector<NodeDesc> written;
  Status st = UpdateNodes(
      ctx,
      [&](NodeDescTxn& txn) -> Status {
        KGR_ASSIGN_OR_RETURN(NodeDesc d, txn.Get(node.n_id));
        const SymmetricKeys& held = under_prev ? d.prev_nksk : d.nksk;
        if (d.state != NodeState::kRegistered || !held.Equals(used) ||
            d.nksk_version != node.nksk_version ||
            d.request_floor >= h.request_id) {
          return AbortedError("rotated meanwhile by another instance");
        }
        d.prev_nksk = held.Clone();
        d.nksk = keys->Clone();
        d.nksk_version = version;
        d.request_floor = h.request_id;
        txn.Put(std::move(d));
        return OkStatus();
      },
      &written);
  if (st.ok() && written.size() != 1) st = InternalError("nothing written");
  if (!st.ok()) {
    spdlog::error("ks: NKSK rotation not stored: {}", st.ToString());
    return;
  }
  floor = h.request_id;
  spdlog::info("ks: node {} rotates its NKSK to version {}",
               FormatNodeId(node.n_id), version);
  ctx.rotations[node.n_id] = {h.request_id, req.node_public, ks_key->public_key,
                              version};
  st = SendToNode(ctx, written[0], h.request_id, 0,
                  NkskRotAns{ks_key->public_key, version});
  if (!st.ok()) spdlog::warn("ks: nksk_rot_ans not sent: {}", st.ToString());
}

Status RequestRotation(Context& ctx, uint32_t n_id) {
  auto node = GetNode(ctx, n_id);
  if (!node.ok()) return NotFoundError("unknown node");
  if (node->state != NodeState::kRegistered) {
    return FailedPreconditionError("node not registered");
  }
  return SendToNode(ctx, *node, 0, 0, NkskRotSig{});
}

NodeRef CompleteRotation(Context& ctx, NodeRef node) {
  // The previous pair goes if the node still holds the new one the frame
  // came under (another instance may have completed it already).
  std::vector<NodeDesc> written;
  Status st = UpdateNodes(
      ctx,
      [&](NodeDescTxn& txn) -> Status {
        KGR_ASSIGN_OR_RETURN(NodeDesc d, txn.Get(node->n_id));
        if (!d.prev_nksk.valid() || !d.nksk.Equals(node->nksk)) {
          return OkStatus();
        }
        d.prev_nksk = SymmetricKeys{};
        txn.Put(std::move(d));
        return OkStatus();
      },
      &written);
  if (!st.ok())
    spdlog::error("ks: rotation not completed: {}", st.ToString());
  else if (!written.empty())
    node = std::make_shared<const NodeDesc>(std::move(written[0]));
  ctx.rotations.erase(node->n_id);
  spdlog::info("ks: node {} uses its new NKSK (version {})",
               FormatNodeId(node->n_id), node->nksk_version);
  return node;
}

}  // namespace kgr::ks
