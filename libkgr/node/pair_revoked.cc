// N: the KS withdrew a pair or revoked the peer.
#include <spdlog/spdlog.h>

#include <algorithm>

#include "kgr/node_client.h"

namespace kgr {

void NodeClient::OnPairRevoked(const FrameHeader& h, const PairRevoked& m) {
  // Wipe everything of the pair: its keys (ses_keys entry, previous key),
  // its topics and its pending requests. Data from the peer is then dropped.
  Status st = ses_.Delete(m.peer);
  if (!st.ok()) return Log("pair not wiped", &h, st.message());
  auto it = pairs_.find(m.peer);
  if (it != pairs_.end()) {
    for (const std::string& t : it->second.routes) topic_to_peer_.erase(t);
    pairs_.erase(it);
  }
  std::erase_if(topic_to_peer_,
                [&](const auto& e) { return e.second == m.peer; });
  std::vector<uint64_t> ids;
  for (const auto& [id, p] : pending_) {
    if (PeerOf(p) == m.peer) ids.push_back(id);
  }
  for (uint64_t id : ids) Finish(id, PermissionDeniedError("pair revoked"));
  spdlog::warn(
      "node {}: pair with {} revoked by the key server ({}); its "
      "keys are wiped",
      FormatNodeId(n_id()), FormatNodeId(m.peer),
      m.reason == RevokeReason::kPeerRevoked ? "peer revoked"
                                             : "pair withdrawn");
  if (pair_end_handler_) {
    pair_end_handler_(m.peer, m.reason == RevokeReason::kPeerRevoked
                                  ? PairEnd::kPeerRevoked
                                  : PairEnd::kWithdrawn);
  }
}

}  // namespace kgr
