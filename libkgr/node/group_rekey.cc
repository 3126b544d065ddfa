// group_rekey (0x12) on a group's rekey topic (docs/protocol.md section
// 12): checked against the KS's group signing key the node got with its
// path, applied to the node's path keys (group::GroupMemberKeys: only the
// entries on its path), and the new group key taken (OnGroupKeys: one
// synced write of grp_keys, no TPM command). An old or replayed epoch is
// ignored; a gap the node cannot bridge (a missed rekey, a wrap it cannot
// open: it missed one, or it was removed) makes it ask the KS for its path
// (group_sync_req), whose answer is the path or "not a member" (LeaveGroup).
#include "kgr/group_rekey.h"

#include <spdlog/spdlog.h>

#include "group/member_keys.h"
#include "kgr/node_client.h"

namespace kgr {

void NodeClient::HandleGroupRekey(uint32_t group_id, const Bytes& frame) {
  auto git = groups_.find(group_id);
  if (git == groups_.end()) return;  // left meanwhile
  GroupState& g = git->second;
  FrameHeader h;
  auto part = OpenGroupRekey(frame, g.record.ks_sign_public, &h);
  if (!part.ok())
    return Log("dropped group_rekey", nullptr, part.status().message());
  if (own_.identity.ks_n_id != 0 && h.sender != own_.identity.ks_n_id) {
    return Log("dropped", &h, "sender is not the key server");
  }
  if (part->group_id != group_id) {
    return Log("dropped", &h, "rekey of another group on this topic");
  }
  if (part->epoch <= g.record.key_version) {
    // A replay, or a rekey the node already has (from its join's path).
    if (part->epoch < g.record.key_version) {
      Log("dropped", &h, "old group epoch");
    }
    return;
  }
  if (g.path == nullptr) return WantGroupSync(group_id, "no path keys");
  auto outcome = g.path->Apply(*part, clock_.NowUnixMillis());
  if (!outcome.ok()) return Log("dropped", &h, outcome.status().message());
  switch (*outcome) {
    case group::RekeyOutcome::kWaitingParts:
    case group::RekeyOutcome::kAlreadyHave:
      return;
    case group::RekeyOutcome::kMissedRekey:
    case group::RekeyOutcome::kCannotOpen:
      return WantGroupSync(group_id,
                           std::string(group::RekeyOutcomeName(*outcome)) +
                               " at epoch " + std::to_string(part->epoch));
    case group::RekeyOutcome::kApplied:
      break;
  }
  const GroupPath& next = g.path->path();
  GroupKeyUpdate u;
  u.group_id = group_id;
  u.mode = static_cast<GroupMode>(g.record.mode);
  u.key_version = next.epoch;
  u.group_key = next.keys.back().secret.Clone();
  Bytes encoded;
  next.EncodeTo(&encoded);
  u.path_keys = SecretBytes(encoded);
  WipeVector(encoded);
  Status st = OnGroupKeys(std::move(u));
  if (!st.ok()) {
    Log("group rekey not taken", &h, st.message());
    LoadGroupPath(groups_.at(group_id));  // back to the stored keys
  }
}

}  // namespace kgr
