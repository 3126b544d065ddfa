#include "kgr/key_server.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "ks/internal.h"

namespace kgr {

Status KeyServer::SetPeers(const AcPeersReq& req) {
  auto node = GetNode(req.n_id);
  if (!node.ok()) return NotFoundError("unknown node");
  std::map<uint32_t, NodeDesc> changed;
  changed.emplace(req.n_id, node->Clone());
  for (uint32_t p : req.peers) {
    if (p == req.n_id) return InvalidArgumentError("node paired with itself");
    auto peer = GetNode(p);
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
  KGR_RETURN_IF_ERROR(PutNodes(batch));
  if (!req.allow) {
    for (uint32_t p : req.peers) {
      NotifyPairRevoked(req.n_id, p, RevokeReason::kPairWithdrawn);
      NotifyPairRevoked(p, req.n_id, RevokeReason::kPairWithdrawn);
    }
  }
  return OkStatus();
}

bool KeyServer::NotifyPairRevoked(uint32_t node, uint32_t peer,
                                  RevokeReason reason) {
  auto d = GetNode(node);
  if (!d.ok() || d->state != NodeState::kRegistered) return false;
  Status st = SendToNode(*d, 0, 0, PairRevoked{peer, reason});
  if (!st.ok()) {
    spdlog::warn("ks: pair_revoked to {} not sent: {}", FormatNodeId(node),
                 st.ToString());
    return false;
  }
  return true;
}

Status KeyServer::RevokeNode(uint32_t n_id, int* notified) {
  *notified = 0;
  auto node = GetNode(n_id);
  if (!node.ok()) return NotFoundError("unknown node");
  if (node->state == NodeState::kRevoked) return OkStatus();
  // Its peers first lose it from their allowed lists...
  std::vector<NodeDesc> batch;
  for (uint32_t p : node->allowed_peers) {
    auto peer = GetNode(p);
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
  KGR_RETURN_IF_ERROR(PutNodes(batch));
  std::vector<uint64_t> pending;
  gen_keys_.ForEach([&](const GenKey& g) {
    if (g.n_id1 == n_id || g.n_id2 == n_id) pending.push_back(g.request_id);
  });
  for (uint64_t id : pending) gen_keys_.DeleteUnsynced(id);
  windows_.erase(n_id);
  for (uint32_t p : node->allowed_peers) {
    if (NotifyPairRevoked(p, n_id, RevokeReason::kPeerRevoked)) ++*notified;
  }
  spdlog::warn("ks: node {} revoked; {} pending keys dropped, {} peers told",
               FormatNodeId(n_id), pending.size(), *notified);
  return OkStatus();
}

}  // namespace kgr
