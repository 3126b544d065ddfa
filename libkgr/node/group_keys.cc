// A node's group keys: taking a rekey, join or catch-up (OnGroupKeys),
// leaving, loading grp_keys at start, the group's topics, the previous
// key's overlap. No TPM
// command: grp_keys is sealed with NK, which the node holds in memory.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <set>

#include "group/member_keys.h"
#include "kgr/group_frames.h"
#include "kgr/node_client.h"

namespace kgr {

namespace {

constexpr uint64_t kGroupRouteRetryMs = 2'000;

// Replaces `members` (a map of N_ID to the client's member state) by the
// membership `list`, adding to `batch` the member records that are new or
// changed and the deletions of those gone. `members` is unchanged on error.
template <typename MemberMap>
Status StageMembers(uint32_t group_id, const std::vector<GroupMemberKey>& list,
                    MemberMap& members, GroupStore::Batch& batch) {
  for (const GroupMemberKey& m : list) {
    if (m.n_id == 0) return InvalidArgumentError("group member 0");
    if (!m.public_key.empty() && m.public_key.size() != kEd25519PublicSize) {
      return InvalidArgumentError("group member " + FormatNodeId(m.n_id) +
                                  ": an Ed25519 public key is 32 bytes");
    }
  }
  MemberMap next;
  for (const GroupMemberKey& m : list) {
    typename MemberMap::mapped_type ms;
    auto old = members.find(m.n_id);
    if (old != members.end()) ms = std::move(old->second);
    const bool changed = old == members.end() || ms.public_key != m.public_key;
    ms.public_key = m.public_key;
    if (changed) {
      GroupRecord mr;
      mr.group_id = group_id;
      mr.member = m.n_id;
      mr.public_key = m.public_key;
      mr.rx_counter = ms.rx_floor;
      KGR_RETURN_IF_ERROR(batch.Put(mr));
    }
    next.emplace(m.n_id, std::move(ms));
  }
  for (const auto& [n, ms] : members) {
    if (!next.contains(n)) batch.Delete((uint64_t{group_id} << 32) | n);
  }
  members = std::move(next);
  return OkStatus();
}

}  // namespace

void NodeClient::RouteGroup(uint32_t group_id, GroupState& g) {
  const std::string& prefix = own_.identity.topic_prefix;
  std::string data =
      GroupTopicName(prefix, group_id, false, g.record.data_topic);
  std::string rekey =
      GroupTopicName(prefix, group_id, true, g.record.rekey_topic);
  if (g.routed && data == g.topic && rekey == g.rekey_topic) return;
  if (!g.topic.empty() && (data != g.topic || rekey != g.rekey_topic)) {
    topic_to_group_.erase(g.topic);
    rekey_topic_to_group_.erase(g.rekey_topic);
    (void)transport_.Unsubscribe(g.topic);
    (void)transport_.Unsubscribe(g.rekey_topic);
  }
  g.topic = std::move(data);
  g.rekey_topic = std::move(rekey);
  topic_to_group_[g.topic] = group_id;
  rekey_topic_to_group_[g.rekey_topic] = group_id;
  Status st = transport_.Subscribe(g.rekey_topic);
  if (st.ok()) st = transport_.Subscribe(g.topic);
  g.routed = st.ok();
  if (!st.ok()) {
    g.next_route_ms = clock_.NowMonotonicMillis() + kGroupRouteRetryMs;
    spdlog::warn(
        "node {}: group {:08x}: topics not subscribed ({}); trying "
        "again",
        FormatNodeId(n_id()), group_id, st.message());
    return;
  }
  spdlog::info("node {}: group {:08x}: subscribed its data and rekey topics",
               FormatNodeId(n_id()), group_id);
}

void NodeClient::LoadGroupPath(GroupState& g) {
  g.path.reset();
  if (g.record.path_keys.empty()) return;
  auto path = GroupPath::Parse(g.record.path_keys.span());
  if (path.ok()) {
    auto keys = group::GroupMemberKeys::FromPath(std::move(*path),
                                                 options_.group_overlap_ms);
    if (keys.ok()) {
      g.path = std::make_shared<group::GroupMemberKeys>(std::move(*keys));
      return;
    }
    path = keys.status();
  }
  spdlog::warn(
      "node {}: group {:08x}: stored path keys unusable ({}): "
      "asking the key server",
      FormatNodeId(n_id()), g.record.group_id, path.status().message());
}

Status NodeClient::LoadGroups() {
  if (groups_store_ == nullptr) return OkStatus();
  std::vector<GroupRecord> members;
  Status st = OkStatus();
  groups_store_->ForEach([&](const GroupRecord& r) {
    if (r.kind() == GroupRecord::Kind::kGroup) {
      GroupState g;
      g.record = r.Clone();
      LoadGroupPath(g);
      // A member that was offline may have missed rekeys: it asks.
      g.sync_wanted = true;
      if (!r.group_key.empty()) {
        auto k = GroupDataKeys(r.group_key, r.group_id, r.key_version);
        if (!k.ok())
          st = k.status();
        else
          g.keys = std::move(k).value();
      }
      if (!r.prev_group_key.empty()) {
        auto k = GroupDataKeys(r.prev_group_key, r.group_id, r.prev_version);
        if (k.ok()) g.prev_keys = std::move(k).value();
      }
      groups_.emplace(r.group_id, std::move(g));
    } else if (r.kind() == GroupRecord::Kind::kMember) {
      members.push_back(r.Clone());
    }
  });
  KGR_RETURN_IF_ERROR(st);
  for (const GroupRecord& m : members) {
    auto it = groups_.find(m.group_id);
    if (it == groups_.end()) continue;
    GroupMemberState ms;
    ms.public_key = m.public_key;
    ms.rx_floor = m.rx_counter;
    ms.window = ReplayWindow(m.rx_counter);  // a restart reopens nothing
    it->second.members.emplace(m.member, std::move(ms));
  }
  for (auto& [id, g] : groups_) RouteGroup(id, g);
  return OkStatus();
}

Status NodeClient::OnGroupKeys(GroupKeyUpdate u) {
  if (groups_store_ == nullptr) {
    return FailedPreconditionError("this node keeps no group state");
  }
  if (u.group_id == 0 || u.key_version == 0 ||
      u.group_key.size() != kGroupKeySize) {
    return InvalidArgumentError("group keys: need a group, version and key");
  }
  auto it = groups_.find(u.group_id);
  const bool is_new = it == groups_.end();
  if (is_new && !u.channel.has_value()) {
    return InvalidArgumentError("group keys: a new group needs its topics");
  }
  GroupRecord rec;
  if (!is_new) rec = it->second.record.Clone();
  rec.group_id = u.group_id;
  rec.member = 0;
  const uint32_t old_version = rec.key_version;
  if (!is_new && u.key_version < old_version) {
    return FailedPreconditionError(
        "group " + std::to_string(u.group_id) + ": key version " +
        std::to_string(u.key_version) + " is older than the one held");
  }
  const bool newer = is_new || u.key_version > old_version;
  if (!newer && !rec.group_key.Equals(u.group_key)) {
    return FailedPreconditionError("group " + std::to_string(u.group_id) +
                                   ": another key under the same version");
  }
  KGR_ASSIGN_OR_RETURN(SymmetricKeys keys,
                       GroupDataKeys(u.group_key, u.group_id, u.key_version));
  if (newer && !is_new && !rec.group_key.empty()) {
    rec.prev_group_key = std::move(rec.group_key);
    rec.prev_version = old_version;
    rec.prev_until_unix_ms = clock_.NowUnixMillis() + options_.group_overlap_ms;
  }
  rec.mode = static_cast<uint8_t>(u.mode);
  rec.key_version = u.key_version;
  rec.group_key = u.group_key.Clone();
  if (!u.path_keys.empty()) rec.path_keys = u.path_keys.Clone();
  if (u.channel.has_value()) {
    rec.rekey_topic = u.channel->rekey_topic;
    rec.data_topic = u.channel->data_topic;
    rec.ks_sign_public = u.channel->ks_sign_public;
  }

  // One batch: the group record, members added or changed, members gone.
  GroupStore::Batch batch = groups_store_->NewBatch();
  KGR_RETURN_IF_ERROR(batch.Put(rec));
  std::map<uint32_t, GroupMemberState> members;
  if (!is_new) members = std::move(it->second.members);
  if (u.members.has_value()) {
    Status staged = StageMembers(u.group_id, *u.members, members, batch);
    if (!staged.ok()) {
      if (!is_new) it->second.members = std::move(members);
      return staged;
    }
  }
  Status st = groups_store_->Apply(std::move(batch));
  if (!st.ok()) {
    if (!is_new) it->second.members = std::move(members);
    return st;
  }
  GroupState& g = groups_[u.group_id];
  if (newer && !is_new) g.prev_keys = std::move(g.keys);
  g.keys = std::move(keys);
  g.record = std::move(rec);
  g.members = std::move(members);
  if (!u.path_keys.empty()) LoadGroupPath(g);
  RouteGroup(u.group_id, g);
  if (newer) {
    ++stats_.group_rekeys;
    spdlog::info("node {}: group {:08x} key version {} ({} members, {})",
                 FormatNodeId(n_id()), u.group_id, u.key_version,
                 g.members.size(), GroupModeName(u.mode));
    if (group_key_handler_) group_key_handler_(u.group_id, u.key_version);
  }
  return OkStatus();
}

Status NodeClient::LeaveGroup(uint32_t group_id) {
  auto it = groups_.find(group_id);
  if (it == groups_.end()) return NotFoundError("not in this group");
  GroupStore::Batch batch = groups_store_->NewBatch();
  batch.Delete(uint64_t{group_id} << 32);
  for (const auto& [n, ms] : it->second.members) {
    batch.Delete((uint64_t{group_id} << 32) | n);
  }
  KGR_RETURN_IF_ERROR(groups_store_->Apply(std::move(batch)));
  topic_to_group_.erase(it->second.topic);
  rekey_topic_to_group_.erase(it->second.rekey_topic);
  Status st = transport_.Unsubscribe(it->second.topic);
  Status st2 = transport_.Unsubscribe(it->second.rekey_topic);
  groups_.erase(it);
  spdlog::info("node {}: left group {:08x}", FormatNodeId(n_id()), group_id);
  return st.ok() ? st2 : st;
}

void NodeClient::ExpireGroupKeys() {
  const uint64_t now = clock_.NowUnixMillis();
  for (auto& [id, g] : groups_) {
    if (g.record.prev_version == 0 || now < g.record.prev_until_unix_ms) {
      continue;
    }
    GroupRecord rec = g.record.Clone();
    rec.prev_group_key = SecretBytes();
    rec.prev_version = 0;
    rec.prev_until_unix_ms = 0;
    // Unsynced: a crash before the next write brings back a key that is
    // refused anyway (prev_until_unix_ms has passed).
    groups_store_->PutUnsynced(rec);
    g.record = std::move(rec);
    g.prev_keys = SymmetricKeys();
  }
}

std::vector<GroupInfo> NodeClient::Groups() const {
  std::vector<GroupInfo> out;
  const uint64_t now = clock_.NowUnixMillis();
  for (const auto& [id, g] : groups_) {
    GroupInfo i;
    i.group_id = id;
    i.mode = static_cast<GroupMode>(g.record.mode);
    i.key_version = g.record.key_version;
    if (g.record.prev_version != 0 && now < g.record.prev_until_unix_ms) {
      i.prev_version = g.record.prev_version;
    }
    for (const auto& [n, ms] : g.members) i.members.push_back(n);
    out.push_back(std::move(i));
  }
  return out;
}

}  // namespace kgr
