// The KS side of groups on the wire (docs/protocol.md section 12): the
// unicast bodies a member gets under its NKSK (group_join, group_sync_req,
// group_sync_ans) and the AC's group administration (ac_group_*, clear
// frames inside CMS like the other AC requests). The rekey message
// (group_rekey, 0x12) and group data (0x14) are elsewhere.
//
// Each body has kType, EncodeTo (appends) and Parse (strict: exact length,
// every field within its bound, INVALID_ARGUMENT "malformed frame: ...").
#ifndef KGR_GROUP_FRAMES_H_
#define KGR_GROUP_FRAMES_H_

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "kgr/bytes.h"
#include "kgr/frame.h"
#include "kgr/records.h"
#include "kgr/secret.h"
#include "kgr/status.h"
#include "kgr/topic.h"

namespace kgr {

// 0x13, 0x15, 0x16 and 0x28..0x2F.
bool IsGroupAdminFrameType(uint8_t type);
std::string_view GroupFrameTypeName(FrameType type);

// A group's topics on the broker: <prefix>/g<8 hex of group id>/rekey/
// <base32(id)> (the KS publishes group_rekey, members subscribe) and
// .../data/<base32(id)> (members publish and subscribe group_data).
std::string GroupTopicName(std::string_view prefix, uint32_t group_id,
                           bool rekey, const TopicId& id);

// Members one ac_group_create_req or ac_group_members_req carries, at most
// (kgr-ac splits a longer list into several requests).
inline constexpr size_t kMaxGroupRequestMembers = 10000;

// A member's path as group_join carries it (group_path of kgr/group_rekey.h),
// at most this long.
inline constexpr size_t kMaxGroupPathSize = 1024;

// KS -> member, on its TOPIC2 under its NKSK: everything the member needs to
// take part in the group now. Sent at join (group_join) and as the answer
// to group_sync_req (group_sync_ans, the same body). `path` is the
// member's group_path (kgr/group_rekey.h: leaf to root at epoch
// `key_version`, whose root gives the group data key). An empty `path`
// says the node is not (or no longer) a member: it forgets the group.
// `ks_sign_public` verifies the group's group_rekey frames. `members`
// carries each member's Ed25519 public key (all zero until that member
// sent it) for sender authentication.
template <FrameType T>
struct GroupPathBody {
  static constexpr FrameType kType = T;
  uint32_t group_id = 0;
  uint32_t key_version = 0;
  GroupMode mode = GroupMode::kGroupKey;
  TopicId rekey_topic{};
  TopicId data_topic{};
  std::array<uint8_t, kEd25519PublicSize> ks_sign_public{};
  SecretBytes path;                  // group_path, <= kMaxGroupPathSize
  std::vector<GroupMember> members;  // <= kMaxGroupMembers (u32 count)
  void EncodeTo(Bytes* out) const;
  static StatusOr<GroupPathBody> Parse(std::span<const uint8_t> in);
};
using GroupJoin = GroupPathBody<FrameType::kGroupJoin>;
using GroupSyncAns = GroupPathBody<FrameType::kGroupSyncAns>;

// Member -> KS on TOPIC1 under its NKSK: "send me my path again" (a member
// that missed rekeys, or one that sees a sender it has no public key of),
// and the member's own Ed25519 public key (all zero in a group-key-only
// group or if it has none), which the KS records in the membership.
struct GroupSyncReq {
  static constexpr FrameType kType = FrameType::kGroupSyncReq;
  uint32_t group_id = 0;
  uint32_t have_version = 0;  // the member's group key version, 0: none
  std::array<uint8_t, kEd25519PublicSize> sign_public{};
  void EncodeTo(Bytes* out) const;
  static StatusOr<GroupSyncReq> Parse(std::span<const uint8_t> in);
};

// ---- AC <-> KS (0x28..0x2F) ----

// AC -> KS: a new group `name` with its first members.
struct AcGroupCreateReq {
  static constexpr FrameType kType = FrameType::kAcGroupCreateReq;
  std::string name;
  GroupMode mode = GroupMode::kGroupKey;
  uint32_t lifetime_s = 0;        // 0: no periodic rekey
  std::vector<uint32_t> members;  // <= kMaxGroupRequestMembers
  void EncodeTo(Bytes* out) const;
  static StatusOr<AcGroupCreateReq> Parse(std::span<const uint8_t> in);
};

// AC -> KS: add (add = 1) or remove (0) members of group `name`.
struct AcGroupMembersReq {
  static constexpr FrameType kType = FrameType::kAcGroupMembersReq;
  std::string name;
  uint8_t add = 1;
  std::vector<uint32_t> members;  // 1..kMaxGroupRequestMembers
  void EncodeTo(Bytes* out) const;
  static StatusOr<AcGroupMembersReq> Parse(std::span<const uint8_t> in);
};

// AC -> KS: delete group `name` (every member told to forget it).
struct AcGroupDeleteReq {
  static constexpr FrameType kType = FrameType::kAcGroupDeleteReq;
  std::string name;
  void EncodeTo(Bytes* out) const;
  static StatusOr<AcGroupDeleteReq> Parse(std::span<const uint8_t> in);
};

// KS -> AC: the result of create, members or delete. status 0 = OK, else a
// StatusCode value and `message` says what was wrong (<= 200 bytes).
template <FrameType T>
struct AcGroupAnsBody {
  static constexpr FrameType kType = T;
  uint8_t status = 0;
  uint32_t group_id = 0;
  uint32_t key_version = 0;  // after the change
  std::string message;
  void EncodeTo(Bytes* out) const;
  static StatusOr<AcGroupAnsBody> Parse(std::span<const uint8_t> in);
};
using AcGroupCreateAns = AcGroupAnsBody<FrameType::kAcGroupCreateAns>;
using AcGroupMembersAns = AcGroupAnsBody<FrameType::kAcGroupMembersAns>;
using AcGroupDeleteAns = AcGroupAnsBody<FrameType::kAcGroupDeleteAns>;
inline constexpr size_t kMaxAcGroupMessage = 200;

// AC -> KS: the groups with an id above `after`, ascending; with
// `member_after` != 0, first the rest of group `after`: its members above
// `member_after` (the answer's first entry), then the groups above it.
struct AcGroupListReq {
  static constexpr FrameType kType = FrameType::kAcGroupListReq;
  uint32_t after = 0;
  uint32_t member_after = 0;
  void EncodeTo(Bytes* out) const;
  static StatusOr<AcGroupListReq> Parse(std::span<const uint8_t> in);
};

struct AcGroupListAns {
  static constexpr FrameType kType = FrameType::kAcGroupListAns;
  struct Entry {
    uint32_t group_id = 0;
    std::string name;
    GroupMode mode = GroupMode::kGroupKey;
    uint32_t lifetime_s = 0;
    uint32_t key_version = 0;
    std::vector<uint32_t> members;  // ascending; a page of them (`more`)
  };
  uint8_t status = 0;
  // 0: the end. 1: groups follow the last entry (ask after its id). 2: the
  // last entry's members continue (ask after its id and its last member).
  uint8_t more = 0;
  std::vector<Entry> groups;
  void EncodeTo(Bytes* out) const;
  static StatusOr<AcGroupListAns> Parse(std::span<const uint8_t> in);
};

}  // namespace kgr

#endif  // KGR_GROUP_FRAMES_H_
