#include <spdlog/spdlog.h>

#include <algorithm>

#include "kgr/key_server.h"
#include "ks/context.h"
#include "ks/group_state.h"
#include "ks/internal.h"

namespace kgr::ks {

Status SetPeers(Context& ctx, const AcPeersReq& req) {
  for (uint32_t p : req.peers) {
    if (p == req.n_id) return InvalidArgumentError("node paired with itself");
  }
  auto link = [&](NodeDesc& a, uint32_t b) {
    auto& v = a.allowed_peers;
    if (req.allow) {
      if (!Contains(v, b)) v.push_back(b);
    } else {
      v.erase(std::remove(v.begin(), v.end(), b), v.end());
    }
  };
  // On the records as stored (another instance may have changed them).
  KGR_RETURN_IF_ERROR(UpdateNodes(ctx, [&](NodeDescTxn& txn) -> Status {
    auto node = txn.Get(req.n_id);
    if (!node.ok()) {
      return node.status().code() == StatusCode::kNotFound
                 ? NotFoundError("unknown node")
                 : node.status();
    }
    for (uint32_t p : req.peers) {
      link(*node, p);
      auto peer = txn.Get(p);
      if (!peer.ok()) continue;
      link(*peer, req.n_id);
      txn.Put(*std::move(peer));
    }
    txn.Put(*std::move(node));
    return OkStatus();
  }));
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
  // On the records as stored (another instance may have changed them).
  std::vector<uint32_t> peers;  // the node's, as stored
  bool already_revoked = false;
  KGR_RETURN_IF_ERROR(UpdateNodes(ctx, [&](NodeDescTxn& txn) -> Status {
    auto node = txn.Get(n_id);
    if (!node.ok()) {
      return node.status().code() == StatusCode::kNotFound
                 ? NotFoundError("unknown node")
                 : node.status();
    }
    peers = node->allowed_peers;
    already_revoked = node->state == NodeState::kRevoked;
    if (already_revoked) return OkStatus();
    // Its peers first lose it from their allowed lists...
    for (uint32_t p : peers) {
      auto peer = txn.Get(p);
      if (!peer.ok()) continue;
      auto& v = peer->allowed_peers;
      v.erase(std::remove(v.begin(), v.end(), n_id), v.end());
      txn.Put(*std::move(peer));
    }
    // ...and the node keeps a record that refuses everything it sends.
    node->state = NodeState::kRevoked;
    node->nksk = SymmetricKeys{};
    node->allowed_peers.clear();
    txn.Put(*std::move(node));
    return OkStatus();
  }));
  if (already_revoked) return PublishCrlAfterRevocation(ctx, n_id);
  std::vector<uint64_t> pending;
  ctx.gen_keys.ForEach([&](const GenKey& g) {
    if (g.n_id1 == n_id || g.n_id2 == n_id) pending.push_back(g.request_id);
  });
  for (uint64_t id : pending) ctx.gen_keys.DeleteUnsynced(id);
  ctx.windows.erase(n_id);
  for (uint32_t p : peers) {
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
