// The group record's clear and secret parts (docs/storage.md 1.6); the
// envelope is records.cc's.
#include <algorithm>
#include <limits>

#include "codec/record_envelope.h"
#include "kgr/records.h"

namespace kgr {

Status ValidateGroupName(std::string_view name) {
  if (name.empty() || name.size() > kMaxGroupNameSize) {
    return InvalidArgumentError("group name: 1 to " +
                                std::to_string(kMaxGroupNameSize) +
                                " characters");
  }
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.';
    if (!ok) {
      return InvalidArgumentError(
          "group name: only letters, digits, '_', '-' and '.'");
    }
  }
  return OkStatus();
}

namespace {

void EncodeHeader(const GroupDesc& g, Bytes* clear, SecretBytes* secret) {
  ByteWriter w(clear);
  w.U8(static_cast<uint8_t>(g.name.size()));
  w.Str(g.name);
  w.U8(static_cast<uint8_t>(g.mode));
  w.U32(g.lifetime_s);
  w.U32(g.key_version);
  w.U64(g.rekeyed_unix_ms);
  w.U8(g.tree_depth);
  w.U32(g.tree_slots);
  w.U32(g.member_count);
  w.U16(static_cast<uint16_t>(g.pending.size()));
  for (const GroupChange& c : g.pending) {
    w.U32(c.n_id);
    w.U8(c.join ? 1 : 0);
    w.Raw(c.sign_public);
  }
  Bytes head;
  ByteWriter s(&head);
  s.U8(0);  // flags: none defined
  s.Raw(g.rekey_topic);
  s.Raw(g.data_topic);
  s.U8(static_cast<uint8_t>(g.sign_key.size()));
  secret->Append(head);
  secret->Append(g.sign_key.span());
}

bool DecodeHeader(std::span<const uint8_t> clear,
                  std::span<const uint8_t> secret, GroupDesc* g) {
  ByteReader c(clear);
  uint8_t name_len = 0, mode = 0;
  uint16_t n = 0;
  std::span<const uint8_t> name;
  if (!c.U8(&name_len) || !c.View(name_len, &name)) return false;
  g->name.assign(name.begin(), name.end());
  if (!ValidateGroupName(g->name).ok() || !c.U8(&mode) || mode > 1 ||
      !c.U32(&g->lifetime_s) || !c.U32(&g->key_version) ||
      !c.U64(&g->rekeyed_unix_ms) || !c.U8(&g->tree_depth) ||
      g->tree_depth < 1 || g->tree_depth > 16 || !c.U32(&g->tree_slots) ||
      !c.U32(&g->member_count) || g->member_count > kMaxGroupMembers ||
      g->member_count > g->tree_slots || !c.U16(&n) || n > kMaxGroupPending ||
      c.remaining() != n * (5 + kEd25519PublicSize)) {
    return false;
  }
  g->mode = static_cast<GroupMode>(mode);
  g->pending.resize(n);
  for (GroupChange& m : g->pending) {
    std::span<const uint8_t> pub;
    uint8_t join = 0;
    c.U32(&m.n_id);
    c.U8(&join);
    c.View(kEd25519PublicSize, &pub);
    if (m.n_id == 0 || join > 1) return false;
    m.join = join == 1;
    std::copy(pub.begin(), pub.end(), m.sign_public.begin());
  }
  ByteReader s(secret);
  uint8_t flags = 0, sign_len = 0;
  std::span<const uint8_t> rekey, data;
  if (!s.U8(&flags) || flags != 0 || !s.View(kTopicIdSize, &rekey) ||
      !s.View(kTopicIdSize, &data) || !s.U8(&sign_len) ||
      (sign_len != 0 && sign_len != 32) || !s.Secret(sign_len, &g->sign_key) ||
      !s.done()) {
    return false;
  }
  std::copy(rekey.begin(), rekey.end(), g->rekey_topic.begin());
  std::copy(data.begin(), data.end(), g->data_topic.begin());
  return true;
}

bool DecodeMemberPiece(std::span<const uint8_t> clear,
                       std::span<const uint8_t> secret, GroupDesc* g) {
  ByteReader c(clear);
  uint8_t n = 0;
  if (!secret.empty() || !c.U8(&n) || n == 0 || n > kGroupMemberPieceSlots ||
      c.remaining() != n * (4 + kEd25519PublicSize)) {
    return false;
  }
  g->members.resize(n);
  for (GroupMember& m : g->members) {
    std::span<const uint8_t> pub;
    c.U32(&m.n_id);
    c.View(kEd25519PublicSize, &pub);
    std::copy(pub.begin(), pub.end(), m.sign_public.begin());
  }
  return true;
}

}  // namespace

namespace records_internal {
Status CheckGroupParts(const GroupDesc& g) {
  if (g.group_id == 0) return InvalidArgumentError("groups: group id 0");
  switch (g.kind) {
    case GroupDesc::Kind::kHeader:
      KGR_RETURN_IF_ERROR(ValidateGroupName(g.name));
      if (g.pending.size() > kMaxGroupPending)
        return InvalidArgumentError("groups: too many pending changes");
      if (!g.sign_key.empty() && g.sign_key.size() != 32)
        return InvalidArgumentError("groups: signing key must be 32 bytes");
      break;
    case GroupDesc::Kind::kTreePiece:
      if (g.tree.empty() || g.tree.size() > kMaxGroupTreePiece)
        return InvalidArgumentError("groups: bad key tree piece");
      break;
    case GroupDesc::Kind::kMemberPiece:
      if (g.members.empty() || g.members.size() > kGroupMemberPieceSlots)
        return InvalidArgumentError("groups: bad member piece");
      break;
  }
  return OkStatus();
}
}  // namespace records_internal

void EncodeGroupParts(const GroupDesc& g, Bytes* clear, SecretBytes* secret) {
  switch (g.kind) {
    case GroupDesc::Kind::kHeader:
      return EncodeHeader(g, clear, secret);
    case GroupDesc::Kind::kTreePiece:
      return secret->Append(g.tree.span());
    case GroupDesc::Kind::kMemberPiece: {
      ByteWriter w(clear);
      w.U8(static_cast<uint8_t>(g.members.size()));
      for (const GroupMember& m : g.members) {
        w.U32(m.n_id);
        w.Raw(m.sign_public);
      }
      return;
    }
  }
}

bool DecodeGroupParts(uint64_t key, std::span<const uint8_t> clear,
                      std::span<const uint8_t> secret, GroupDesc* g) {
  const uint8_t kind = static_cast<uint8_t>(key >> 56);
  g->group_id = static_cast<uint32_t>(key);
  g->level = static_cast<uint8_t>(key >> 48);
  g->piece = static_cast<uint16_t>(key >> 32);
  if (g->group_id == 0 || kind > 2) return false;
  g->kind = static_cast<GroupDesc::Kind>(kind);
  switch (g->kind) {
    case GroupDesc::Kind::kHeader:
      return g->level == 0 && g->piece == 0 && DecodeHeader(clear, secret, g);
    case GroupDesc::Kind::kTreePiece:
      if (!clear.empty() || secret.empty() ||
          secret.size() > kMaxGroupTreePiece || g->level > 16) {
        return false;
      }
      g->tree = SecretBytes(secret);
      return true;
    case GroupDesc::Kind::kMemberPiece:
      return g->level == 0 && DecodeMemberPiece(clear, secret, g);
  }
  return false;
}

}  // namespace kgr
