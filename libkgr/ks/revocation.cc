#include <spdlog/spdlog.h>

#include <algorithm>

#include "kgr/key_server.h"
#include "ks/context.h"
#include "ks/group_state.h"
#include "ks/internal.h"

namespace kgr::ks {

Status SetPeers(Context& ctx, const AcPeersReq& req) {
  auto node = GetNode(ctx, req.n_id);
  if (!node.ok()) return NotFoundError("unknown node");
  std::map<uint32_t, NodeDesc> changed;
  changed.emplace(req.n_id, node->Clone());
  for (uint32_t p : req.peers) {
    if (p == req.n_id) return InvalidArgumentError("node paired with itself");
    auto peer = GetNode(ctx, p);
    if (peer.ok()) changed.emplace(p, peer->Clone());
  }
  auto link = [&](NodeDesc& a, uint32_t b) {
    auto& v = a.allowed_peers;
    if (req.allow) {
      if (!Contains(v, b)) v.push_back(b);
    } else {
      v.erase(std::remove(v.begin(), v.end(), b), v.end());
    }
  };
  for (uint32_t p : req.peers) {
    link(changed.at(req.n_id), p);
    auto it = changed.find(p);
    if (it != changed.end()) link(it->second, req.n_id);
  }
  std::vector<NodeDesc> batch;
  for (auto& [id, d] : changed) batch.push_back(std::move(d));
  KGR_RETURN_IF_ERROR(PutNodes(ctx, batch));
  if (!req.allow) {
    for (uint32_t p : req.peers) {
      NotifyPairRevoked(ctx, req.n_id, p, RevokeReason::kPairWithdrawn);
      NotifyPairRevoked(ctx, p, req.n_id, RevokeReason::kPairWithdrawn);
    }
  }
  return OkStatus();
}

bool NotifyPairRevoked(Context& ctx, uint32_t node, uint32_t peer,
                       RevokeReason reason) {
  auto d = GetNode(ctx, node);
  if (!d.ok() || d->state != NodeState::kRegistered) return false;
  Status st = SendToNode(ctx, *d, 0, 0, PairRevoked{peer, reason});
  if (!st.ok()) {
    spdlog::warn("ks: pair_revoked to {} not sent: {}", FormatNodeId(node),
                 st.ToString());
    return false;
  }
  return true;
}

namespace {

// The node CA's CRL with the node's KS-renewed certificates in it, before
// the AC hears that the node is revoked (it cuts the node's connection
// next). Asked again (the AC's revoke repeated), it is published again.
Status PublishCrlAfterRevocation(Context& ctx, uint32_t n_id) {
  Status st = PublishNodeCrl(ctx);
  if (st.ok()) return st;
  spdlog::error("ks: node {} revoked, but the node CRL was not published: {}",
                FormatNodeId(n_id), st.ToString());
  return UnavailableError("node revoked, node CRL not published: " +
                          st.message());
}

}  // namespace

Status RevokeNode(Context& ctx, uint32_t n_id, int* notified) {
  *notified = 0;
  auto node = GetNode(ctx, n_id);
  if (!node.ok()) return NotFoundError("unknown node");
  if (node->state == NodeState::kRevoked) {
    return PublishCrlAfterRevocation(ctx, n_id);
  }
  // Its peers first lose it from their allowed lists...
  std::vector<NodeDesc> batch;
  for (uint32_t p : node->allowed_peers) {
    auto peer = GetNode(ctx, p);
    if (!peer.ok()) continue;
    NodeDesc updated = peer->Clone();
    auto& v = updated.allowed_peers;
    v.erase(std::remove(v.begin(), v.end(), n_id), v.end());
    batch.push_back(std::move(updated));
  }
  // ...and the node keeps a record that refuses everything it sends.
  NodeDesc revoked = node->Clone();
  revoked.state = NodeState::kRevoked;
  revoked.nksk = SymmetricKeys{};
  revoked.allowed_peers.clear();
  batch.push_back(std::move(revoked));
  KGR_RETURN_IF_ERROR(PutNodes(ctx, batch));
  std::vector<uint64_t> pending;
  ctx.gen_keys.ForEach([&](const GenKey& g) {
    if (g.n_id1 == n_id || g.n_id2 == n_id) pending.push_back(g.request_id);
  });
  for (uint64_t id : pending) ctx.gen_keys.DeleteUnsynced(id);
  ctx.windows.erase(n_id);
  for (uint32_t p : node->allowed_peers) {
    if (NotifyPairRevoked(ctx, p, n_id, RevokeReason::kPeerRevoked))
      ++*notified;
  }
  const int groups = RemoveFromAllGroups(ctx, n_id);  // a rekey each
  spdlog::warn(
      "ks: node {} revoked; {} pending keys dropped, {} peers told, left {} "
      "groups",
      FormatNodeId(n_id), pending.size(), *notified, groups);
  return PublishCrlAfterRevocation(ctx, n_id);
}

}  // namespace kgr::ks
