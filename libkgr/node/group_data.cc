// Group messages (0x14): publishing under the group key (signed in a
// sender_auth group) and receiving them with a replay window per sender.
#include <spdlog/spdlog.h>

#include "kgr/node_client.h"

namespace kgr {

Status NodeClient::SendGroup(uint32_t group_id, const SecretBytes& data) {
  auto it = groups_.find(group_id);
  if (it == groups_.end() || !it->second.keys.valid()) {
    return NotFoundError("no key for group " + std::to_string(group_id));
  }
  if (data.size() > kMaxGroupDataSize) {
    return InvalidArgumentError("group data larger than " +
                                std::to_string(kMaxGroupDataSize) + " bytes");
  }
  GroupState& g = it->second;
  const GroupMode mode = static_cast<GroupMode>(g.record.mode);
  const SecretBytes* signing = nullptr;
  if (mode == GroupMode::kSenderAuth) {
    KGR_ASSIGN_OR_RETURN(const Ed25519KeyPair* pair, SigningKey());
    signing = &pair->private_key;
  }
  KGR_ASSIGN_OR_RETURN(uint64_t request_id, RandomU64());
  FrameHeader h;
  h.type = FrameType::kGroupData;
  h.sender = n_id();
  h.key_version = g.record.key_version;
  h.counter = counter_.Next(clock_.NowUnixMicros());
  h.request_id = request_id;
  KGR_ASSIGN_OR_RETURN(
      Bytes frame,
      SealGroupData(h, group_id, mode, data.span(), g.keys, signing));
  KGR_RETURN_IF_ERROR(transport_.Publish(g.topic, frame));
  ++stats_.group_sent;
  return OkStatus();
}

const SymmetricKeys* NodeClient::GroupReceiveKey(GroupState& g, uint32_t v) {
  if (v == g.record.key_version && g.keys.valid()) return &g.keys;
  if (v != 0 && v == g.record.prev_version && g.prev_keys.valid() &&
      clock_.NowUnixMillis() < g.record.prev_until_unix_ms) {
    return &g.prev_keys;
  }
  return nullptr;
}

Status NodeClient::ReserveGroupRx(uint32_t group_id, uint32_t member,
                                  GroupMemberState& m, uint64_t counter) {
  GroupRecord r;
  r.group_id = group_id;
  r.member = member;
  r.public_key = m.public_key;
  r.rx_counter = counter + kRxReserveMicros;
  // Synced before the frame is accepted, so that no restart reopens it.
  KGR_RETURN_IF_ERROR(groups_store_->Put(r));
  m.rx_floor = r.rx_counter;
  return OkStatus();
}

void NodeClient::HandleGroupData(uint32_t group_id, const Bytes& frame) {
  auto peek = PeekFrameHeader(frame);
  if (!peek.ok()) return Log("dropped group", nullptr, peek.status().message());
  const FrameHeader& h = *peek;
  if (h.type != FrameType::kGroupData) {
    return Log("dropped", &h, "not a group message");
  }
  if (h.sender == n_id()) return;  // our own message, back from the broker
  auto git = groups_.find(group_id);
  if (git == groups_.end()) return Log("dropped", &h, "not in the group");
  GroupState& g = git->second;
  const GroupMode mode = static_cast<GroupMode>(g.record.mode);
  const SymmetricKeys* keys = GroupReceiveKey(g, h.key_version);
  if (keys == nullptr) {
    if (h.key_version > g.record.key_version) {
      WantGroupSync(group_id, "a message under a newer group key");
    }
    return Log("dropped", &h, "unknown or expired group key version");
  }
  auto mit = g.members.find(h.sender);
  // A rekey does not carry the membership: a sender the node does not know
  // yet joined since its last path. Under the current key only a current
  // member can seal, so in a group_key group that proves it; a sender_auth
  // group needs its public key from the KS first.
  const bool newcomer = mit == g.members.end();
  if (newcomer && (mode == GroupMode::kSenderAuth ||
                   h.key_version != g.record.key_version)) {
    if (mode == GroupMode::kSenderAuth) {
      WantGroupSync(group_id, "a sender without its public key");
    }
    return Log("dropped", &h, "sender is not a member of the group");
  }
  GroupMemberState joined;
  GroupMemberState* member = newcomer ? &joined : &mit->second;
  if (mode == GroupMode::kSenderAuth && member->public_key.empty()) {
    WantGroupSync(group_id, "a sender without its public key");
    return Log("dropped", &h, "no public key for the sender");
  }
  if (!member->window.IsFresh(h.counter)) {
    return Log("dropped", &h, "replayed");
  }
  FrameHeader opened;
  auto body =
      OpenGroupData(frame, *keys, group_id, mode, member->public_key, &opened);
  if (!body.ok()) return Log("dropped", &h, body.status().message());
  if (newcomer) {
    member = &g.members.emplace(h.sender, std::move(joined)).first->second;
  }
  GroupMemberState& m = *member;
  if (h.counter > m.rx_floor) {
    Status st = ReserveGroupRx(group_id, h.sender, m, h.counter);
    if (!st.ok()) return Log("dropped", &h, st.message());
  }
  m.window.Accept(h.counter);
  ++stats_.group_received;
  if (!group_handler_) return;
  GroupMessage msg;
  msg.group_id = group_id;
  msg.sender = h.sender;
  msg.key_version = h.key_version;
  msg.counter = h.counter;
  msg.mode = mode;
  msg.data = std::move(body->data);
  group_handler_(msg);
}

}  // namespace kgr
