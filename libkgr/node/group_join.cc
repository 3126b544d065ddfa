// group_join (0x13) and group_sync_ans (0x16) from the KS (docs/protocol.md
// section 14): the node's path in the group's key hierarchy at the group's
// current epoch, the membership, the group's topics and the KS's rekey
// signing key. A path makes the node a member at that epoch (OnGroupKeys:
// one synced write of grp_keys, no TPM command); an empty path says it is
// not, or no longer, a member: it forgets the group (LeaveGroup).
#include <spdlog/spdlog.h>

#include <algorithm>

#include "group/member_keys.h"
#include "kgr/group_frames.h"
#include "kgr/group_rekey.h"
#include "kgr/node_client.h"

namespace kgr {
namespace {

std::vector<GroupMemberKey> MembersOfJoin(const std::vector<GroupMember>& in) {
  const std::array<uint8_t, kEd25519PublicSize> none{};
  std::vector<GroupMemberKey> out;
  out.reserve(in.size());
  for (const GroupMember& m : in) {
    GroupMemberKey k;
    k.n_id = m.n_id;
    if (m.sign_public != none) {
      k.public_key.assign(m.sign_public.begin(), m.sign_public.end());
    }
    out.push_back(std::move(k));
  }
  return out;
}

}  // namespace

void NodeClient::OnGroupPathFrame(const FrameHeader& h,
                                  std::span<const uint8_t> plain) {
  if (h.type == FrameType::kGroupJoin) {
    auto m = GroupJoin::Parse(plain);
    if (!m.ok()) return Log("dropped", &h, m.status().message());
    return OnGroupPath(h, std::move(*m));
  }
  auto m = GroupSyncAns::Parse(plain);
  if (!m.ok()) return Log("dropped", &h, m.status().message());
  GroupJoin same;  // the same body under another type
  same.group_id = m->group_id;
  same.key_version = m->key_version;
  same.mode = m->mode;
  same.rekey_topic = m->rekey_topic;
  same.data_topic = m->data_topic;
  same.ks_sign_public = m->ks_sign_public;
  same.path = std::move(m->path);
  same.members = std::move(m->members);
  OnGroupPath(h, std::move(same));
}

void NodeClient::OnGroupPath(const FrameHeader& h, GroupJoin body) {
  const std::string_view what = FrameTypeName(h.type);
  if (groups_store_ == nullptr) {
    return Log("dropped", &h, "this node keeps no group state");
  }
  auto it = groups_.find(body.group_id);
  if (body.path.empty()) {
    if (it == groups_.end()) return;  // not in it: nothing to forget
    spdlog::info("node {}: the key server removed us from group {:08x}",
                 FormatNodeId(n_id()), body.group_id);
    Status st = LeaveGroup(body.group_id);
    if (!st.ok()) Log("group leave failed", &h, st.message());
    return;
  }
  auto path = GroupPath::Parse(body.path.span());
  if (!path.ok()) return Log("dropped", &h, path.status().message());
  if (path->group_id != body.group_id || path->epoch != body.key_version) {
    return Log("dropped", &h, "path of another group or epoch");
  }
  if (it != groups_.end() && path->epoch < it->second.record.key_version) {
    // A late answer: the node followed rekeys past it meanwhile.
    spdlog::debug("node {}: {} for group {:08x} at epoch {} skipped (ours {})",
                  FormatNodeId(n_id()), what, body.group_id, path->epoch,
                  it->second.record.key_version);
    return GroupSyncDone(it->second);
  }
  GroupKeyUpdate u;
  u.group_id = body.group_id;
  u.mode = body.mode;
  u.key_version = path->epoch;
  u.group_key = path->keys.back().secret.Clone();
  u.path_keys = std::move(body.path);
  u.members = MembersOfJoin(body.members);
  u.channel =
      GroupChannel{body.rekey_topic, body.data_topic, body.ks_sign_public};
  Status st = OnGroupKeys(std::move(u));
  if (!st.ok()) return Log("dropped", &h, st.message());
  GroupState& g = groups_.at(body.group_id);
  GroupSyncDone(g);
  spdlog::info("node {}: {}: group {:08x} at epoch {} (leaf {})",
               FormatNodeId(n_id()), what, body.group_id, path->epoch,
               path->leaf_position);
  if (body.mode != GroupMode::kSenderAuth) return;
  // The KS distributes our signing key once we sent it (group_sync_req).
  auto pub = SigningPublicKey();
  if (!pub.ok()) return Log("group signing key", &h, pub.status().message());
  auto self =
      std::find_if(body.members.begin(), body.members.end(),
                   [&](const GroupMember& m) { return m.n_id == n_id(); });
  if (self == body.members.end() ||
      !std::equal(pub->begin(), pub->end(), self->sign_public.begin(),
                  self->sign_public.end())) {
    WantGroupSync(body.group_id, "our signing key is not distributed yet");
  }
}

}  // namespace kgr
