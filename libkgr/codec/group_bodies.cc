// The group body codecs of the KS side (docs/protocol.md section 12).
#include <algorithm>

#include "kgr/group_frames.h"

namespace kgr {
namespace {

Status MalformedGroupBody(std::string_view what, std::string_view why) {
  return InvalidArgumentError("malformed frame: " + std::string(what) + ": " +
                              std::string(why));
}

// Parsing helper: every Parse ends with Done().
class Reader {
 public:
  explicit Reader(std::span<const uint8_t> in) : r_(in) {}
  void U8(uint8_t* v) { ok_ = ok_ && r_.U8(v); }
  void U16(uint16_t* v) { ok_ = ok_ && r_.U16(v); }
  void U32(uint32_t* v) { ok_ = ok_ && r_.U32(v); }
  template <size_t N>
  void Array(std::array<uint8_t, N>* a) {
    std::span<const uint8_t> s;
    ok_ = ok_ && r_.View(N, &s);
    if (ok_) std::copy(s.begin(), s.end(), a->begin());
  }
  void Secret(size_t n, SecretBytes* s) { ok_ = ok_ && r_.Secret(n, s); }
  // u8 length, then that many bytes, at most `max`, checked by `valid`.
  void Str(size_t max, std::string* s) {
    uint8_t n = 0;
    std::span<const uint8_t> v;
    U8(&n);
    if (ok_ && n > max) bounds_ = false;
    ok_ = ok_ && bounds_ && r_.View(n, &v);
    if (ok_) s->assign(v.begin(), v.end());
  }
  // u16 count, bounded by `max` and by what remains (`each` bytes each).
  bool Count(size_t max, size_t each, size_t* n) {
    uint16_t c = 0;
    U16(&c);
    if (ok_ && c > max) bounds_ = false;
    if (!ok_ || !bounds_ || r_.remaining() < each * c) {
      ok_ = false;
      return false;
    }
    *n = c;
    return true;
  }
  // u32 count, bounded like Count.
  bool Count32(size_t max, size_t each, size_t* n) {
    uint32_t c = 0;
    U32(&c);
    if (ok_ && c > max) bounds_ = false;
    if (!ok_ || !bounds_ || r_.remaining() / each < c) {
      ok_ = false;
      return false;
    }
    *n = c;
    return true;
  }
  void Ids(size_t max, std::vector<uint32_t>* ids) {
    size_t n = 0;
    if (!Count(max, 4, &n)) return;
    ids->resize(n);
    for (auto& id : *ids) U32(&id);
  }
  void Bound(bool within) { bounds_ = bounds_ && within; }
  Status Done(std::string_view what) const {
    if (!bounds_) return MalformedGroupBody(what, "field over its bound");
    if (!ok_) return MalformedGroupBody(what, "truncated body");
    if (!r_.done()) return MalformedGroupBody(what, "trailing bytes");
    return OkStatus();
  }

 private:
  ByteReader r_;
  bool ok_ = true;
  bool bounds_ = true;
};

void WriteStr(ByteWriter& w, std::string_view s) {
  w.U8(static_cast<uint8_t>(s.size()));
  w.Str(s);
}
void WriteMemberIds(ByteWriter& w, const std::vector<uint32_t>& ids) {
  w.U16(static_cast<uint16_t>(ids.size()));
  for (uint32_t id : ids) w.U32(id);
}
bool ValidMode(uint8_t m) { return m <= 1; }
bool ValidName(const std::string& name) { return ValidateGroupName(name).ok(); }

}  // namespace

std::string GroupTopicName(std::string_view prefix, uint32_t group_id,
                           bool rekey, const TopicId& id) {
  return std::string(prefix) + "/g" + FormatNodeId(group_id) +
         (rekey ? "/rekey/" : "/data/") + Base32(id);
}

bool IsGroupAdminFrameType(uint8_t t) {
  return t == 0x13 || t == 0x15 || t == 0x16 || (t >= 0x28 && t <= 0x2F);
}

std::string_view GroupFrameTypeName(FrameType type) {
  switch (type) {
    case FrameType::kGroupJoin:
      return "group_join";
    case FrameType::kGroupSyncReq:
      return "group_sync_req";
    case FrameType::kGroupSyncAns:
      return "group_sync_ans";
    case FrameType::kAcGroupCreateReq:
      return "ac_group_create_req";
    case FrameType::kAcGroupCreateAns:
      return "ac_group_create_ans";
    case FrameType::kAcGroupMembersReq:
      return "ac_group_members_req";
    case FrameType::kAcGroupMembersAns:
      return "ac_group_members_ans";
    case FrameType::kAcGroupListReq:
      return "ac_group_list_req";
    case FrameType::kAcGroupListAns:
      return "ac_group_list_ans";
    case FrameType::kAcGroupDeleteReq:
      return "ac_group_delete_req";
    case FrameType::kAcGroupDeleteAns:
      return "ac_group_delete_ans";
    default:
      return "unknown";
  }
}

// ---- group_join / group_sync_ans ----

template <FrameType T>
void GroupPathBody<T>::EncodeTo(Bytes* out) const {
  ByteWriter w(out);
  w.U32(group_id);
  w.U32(key_version);
  w.U8(static_cast<uint8_t>(mode));
  w.Raw(rekey_topic);
  w.Raw(data_topic);
  w.Raw(ks_sign_public);
  w.U16(static_cast<uint16_t>(path.size()));
  w.Raw(path.span());
  w.U32(static_cast<uint32_t>(members.size()));
  for (const GroupMember& m : members) {
    w.U32(m.n_id);
    w.Raw(m.sign_public);
  }
}

template <FrameType T>
StatusOr<GroupPathBody<T>> GroupPathBody<T>::Parse(
    std::span<const uint8_t> in) {
  const std::string_view what = GroupFrameTypeName(T);
  GroupPathBody m;
  Reader r(in);
  uint8_t mode = 0;
  uint16_t path_len = 0;
  r.U32(&m.group_id);
  r.U32(&m.key_version);
  r.U8(&mode);
  r.Array(&m.rekey_topic);
  r.Array(&m.data_topic);
  r.Array(&m.ks_sign_public);
  r.U16(&path_len);
  r.Bound(path_len <= kMaxGroupPathSize);
  if (path_len <= kMaxGroupPathSize) r.Secret(path_len, &m.path);
  size_t n = 0;
  if (r.Count32(kMaxGroupMembers, 4 + kEd25519PublicSize, &n)) {
    m.members.resize(n);
    for (GroupMember& g : m.members) {
      r.U32(&g.n_id);
      r.Array(&g.sign_public);
    }
  }
  KGR_RETURN_IF_ERROR(r.Done(what));
  if (!ValidMode(mode)) return MalformedGroupBody(what, "unknown mode");
  m.mode = static_cast<GroupMode>(mode);
  return m;
}

template struct GroupPathBody<FrameType::kGroupJoin>;
template struct GroupPathBody<FrameType::kGroupSyncAns>;

void GroupSyncReq::EncodeTo(Bytes* out) const {
  ByteWriter w(out);
  w.U32(group_id);
  w.U32(have_version);
  w.Raw(sign_public);
}
StatusOr<GroupSyncReq> GroupSyncReq::Parse(std::span<const uint8_t> in) {
  GroupSyncReq m;
  Reader r(in);
  r.U32(&m.group_id);
  r.U32(&m.have_version);
  r.Array(&m.sign_public);
  KGR_RETURN_IF_ERROR(r.Done("group_sync_req"));
  return m;
}

// ---- AC ----

void AcGroupCreateReq::EncodeTo(Bytes* out) const {
  ByteWriter w(out);
  WriteStr(w, name);
  w.U8(static_cast<uint8_t>(mode));
  w.U32(lifetime_s);
  WriteMemberIds(w, members);
}
StatusOr<AcGroupCreateReq> AcGroupCreateReq::Parse(
    std::span<const uint8_t> in) {
  AcGroupCreateReq m;
  Reader r(in);
  uint8_t mode = 0;
  r.Str(kMaxGroupNameSize, &m.name);
  r.U8(&mode);
  r.U32(&m.lifetime_s);
  r.Ids(kMaxGroupRequestMembers, &m.members);
  KGR_RETURN_IF_ERROR(r.Done("ac_group_create_req"));
  if (!ValidName(m.name)) return MalformedGroupBody("ac_group_create_req", "bad name");
  if (!ValidMode(mode)) return MalformedGroupBody("ac_group_create_req", "unknown mode");
  m.mode = static_cast<GroupMode>(mode);
  return m;
}

void AcGroupMembersReq::EncodeTo(Bytes* out) const {
  ByteWriter w(out);
  WriteStr(w, name);
  w.U8(add);
  WriteMemberIds(w, members);
}
StatusOr<AcGroupMembersReq> AcGroupMembersReq::Parse(
    std::span<const uint8_t> in) {
  AcGroupMembersReq m;
  Reader r(in);
  r.Str(kMaxGroupNameSize, &m.name);
  r.U8(&m.add);
  r.Ids(kMaxGroupRequestMembers, &m.members);
  KGR_RETURN_IF_ERROR(r.Done("ac_group_members_req"));
  if (!ValidName(m.name)) return MalformedGroupBody("ac_group_members_req", "bad name");
  if (m.add > 1) return MalformedGroupBody("ac_group_members_req", "add must be 0 or 1");
  if (m.members.empty()) return MalformedGroupBody("ac_group_members_req", "no member");
  return m;
}

void AcGroupDeleteReq::EncodeTo(Bytes* out) const {
  ByteWriter w(out);
  WriteStr(w, name);
}
StatusOr<AcGroupDeleteReq> AcGroupDeleteReq::Parse(
    std::span<const uint8_t> in) {
  AcGroupDeleteReq m;
  Reader r(in);
  r.Str(kMaxGroupNameSize, &m.name);
  KGR_RETURN_IF_ERROR(r.Done("ac_group_delete_req"));
  if (!ValidName(m.name)) return MalformedGroupBody("ac_group_delete_req", "bad name");
  return m;
}

template <FrameType T>
void AcGroupAnsBody<T>::EncodeTo(Bytes* out) const {
  ByteWriter w(out);
  w.U8(status);
  w.U32(group_id);
  w.U32(key_version);
  WriteStr(w, std::string_view(message).substr(0, kMaxAcGroupMessage));
}
template <FrameType T>
StatusOr<AcGroupAnsBody<T>> AcGroupAnsBody<T>::Parse(
    std::span<const uint8_t> in) {
  AcGroupAnsBody m;
  Reader r(in);
  r.U8(&m.status);
  r.U32(&m.group_id);
  r.U32(&m.key_version);
  r.Str(kMaxAcGroupMessage, &m.message);
  KGR_RETURN_IF_ERROR(r.Done(GroupFrameTypeName(T)));
  return m;
}
template struct AcGroupAnsBody<FrameType::kAcGroupCreateAns>;
template struct AcGroupAnsBody<FrameType::kAcGroupMembersAns>;
template struct AcGroupAnsBody<FrameType::kAcGroupDeleteAns>;

void AcGroupListReq::EncodeTo(Bytes* out) const {
  ByteWriter w(out);
  w.U32(after);
  w.U32(member_after);
}
StatusOr<AcGroupListReq> AcGroupListReq::Parse(std::span<const uint8_t> in) {
  AcGroupListReq m;
  Reader r(in);
  r.U32(&m.after);
  r.U32(&m.member_after);
  KGR_RETURN_IF_ERROR(r.Done("ac_group_list_req"));
  return m;
}

void AcGroupListAns::EncodeTo(Bytes* out) const {
  ByteWriter w(out);
  w.U8(status);
  w.U8(more);
  w.U16(static_cast<uint16_t>(groups.size()));
  for (const Entry& e : groups) {
    w.U32(e.group_id);
    WriteStr(w, e.name);
    w.U8(static_cast<uint8_t>(e.mode));
    w.U32(e.lifetime_s);
    w.U32(e.key_version);
    WriteMemberIds(w, e.members);
  }
}
StatusOr<AcGroupListAns> AcGroupListAns::Parse(std::span<const uint8_t> in) {
  AcGroupListAns m;
  Reader r(in);
  r.U8(&m.status);
  r.U8(&m.more);
  r.Bound(m.more <= 2);
  size_t n = 0;
  // An entry takes at least 17 bytes: the count is bounded by the input.
  if (r.Count(0xFFFF, 17, &n)) {
    m.groups.resize(n);
    for (Entry& e : m.groups) {
      uint8_t mode = 0;
      r.U32(&e.group_id);
      r.Str(kMaxGroupNameSize, &e.name);
      r.U8(&mode);
      r.Bound(ValidMode(mode));
      e.mode = static_cast<GroupMode>(mode);
      r.U32(&e.lifetime_s);
      r.U32(&e.key_version);
      r.Ids(0xFFFF, &e.members);
    }
  }
  KGR_RETURN_IF_ERROR(r.Done("ac_group_list_ans"));
  return m;
}

}  // namespace kgr
