// group_sync_req (0x15) to the KS (docs/protocol.md section 14): "send me
// my path again". Wanted at start (a member that was offline catches up),
// when a rekey cannot be applied (missed epoch, a wrap that does not open)
// and when a sender's signing key is missing; sent from Tick with back-off
// (1 s doubling to 60 s) until a group_sync_ans or group_join comes. It
// carries the node's Ed25519 public key in a sender_auth group, which is
// how the KS learns it. Tick also subscribes again the topics of groups
// whose subscription the broker refused (group_keys.cc RouteGroup). Group 0
// asks for every group the node is in (at start and every group_resync_ms):
// a node whose group_join was lost learns that it is a member.
#include <spdlog/spdlog.h>

#include <algorithm>

#include "kgr/group_frames.h"
#include "kgr/node_client.h"
#include "node/send_to_ks.h"

namespace kgr {
namespace {

constexpr uint64_t kFirstSyncBackoffMs = 1'000;
constexpr uint64_t kMaxSyncBackoffMs = 60'000;

}  // namespace

void NodeClient::WantGroupSync(uint32_t group_id, std::string_view why) {
  auto it = groups_.find(group_id);
  if (it == groups_.end()) return;
  if (!it->second.sync_wanted) {
    spdlog::info("node {}: group {:08x}: asking the key server ({})",
                 FormatNodeId(n_id()), group_id, why);
  }
  it->second.sync_wanted = true;
}

void NodeClient::GroupSyncDone(GroupState& g) {
  g.sync_wanted = false;
  g.sync_backoff_ms = 0;
  // At most one request a second per group, even if asked again at once.
  g.next_sync_ms = clock_.NowMonotonicMillis() + kFirstSyncBackoffMs;
}

void NodeClient::TickGroupSync(uint64_t now_ms) {
  for (auto& [id, g] : groups_) {
    if (!g.routed && now_ms >= g.next_route_ms) RouteGroup(id, g);
  }
  if (!registered()) return;
  TickAllGroupsSync(now_ms);
  for (auto& [id, g] : groups_) {
    if (!g.sync_wanted || now_ms < g.next_sync_ms) continue;
    GroupSyncReq req;
    req.group_id = id;
    req.have_version = g.record.key_version;
    if (static_cast<GroupMode>(g.record.mode) == GroupMode::kSenderAuth) {
      auto pub = SigningPublicKey();
      if (pub.ok() && pub->size() == req.sign_public.size()) {
        std::copy(pub->begin(), pub->end(), req.sign_public.begin());
      }
    }
    g.sync_backoff_ms = g.sync_backoff_ms == 0 ? kFirstSyncBackoffMs
                                               : std::min(g.sync_backoff_ms * 2,
                                                          kMaxSyncBackoffMs);
    g.next_sync_ms = now_ms + g.sync_backoff_ms;
    auto request_id = RandomU64();
    Status st =
        request_id.ok() ? SendToKs(*request_id, 0, req) : request_id.status();
    if (!st.ok()) Log("group_sync_req not sent", nullptr, st.message());
  }
}

void NodeClient::TickAllGroupsSync(uint64_t now_ms) {
  if (now_ms < next_all_groups_sync_ms_) return;
  const uint64_t period = options_.group_resync_ms;
  next_all_groups_sync_ms_ = UINT64_MAX;
  if (period != 0) {
    uint64_t jitter = 0;
    if (auto r = RandomU32(); r.ok()) jitter = *r % (period / 2 + 1);
    next_all_groups_sync_ms_ = now_ms + period * 3 / 4 + jitter;
  }
  // The answers are group_sync_ans of each group we are in (group_join.cc).
  auto request_id = RandomU64();
  Status st = request_id.ok() ? SendToKs(*request_id, 0, GroupSyncReq{})
                              : request_id.status();
  if (!st.ok())
    Log("group_sync_req (all groups) not sent", nullptr, st.message());
}

}  // namespace kgr
