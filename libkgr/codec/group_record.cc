// The group record's clear and secret parts (docs/storage.md 1.6); the
// envelope is records.cc's.
#include <algorithm>
#include <limits>

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

void EncodeGroupParts(const GroupDesc& g, Bytes* clear, SecretBytes* secret) {
  ByteWriter w(clear);
  w.U8(static_cast<uint8_t>(g.name.size()));
  w.Str(g.name);
  w.U8(static_cast<uint8_t>(g.mode));
  w.U32(g.lifetime_s);
  w.U32(g.key_version);
  w.U64(g.rekeyed_unix_ms);
  w.U16(static_cast<uint16_t>(g.members.size()));
  for (const GroupMember& m : g.members) {
    w.U32(m.n_id);
    w.Raw(m.sign_public);
  }
  Bytes head;
  ByteWriter s(&head);
  s.U8(0);  // flags: none defined
  s.Raw(g.rekey_topic);
  s.Raw(g.data_topic);
  s.U8(static_cast<uint8_t>(g.sign_key.size()));
  secret->Append(head);
  secret->Append(g.sign_key.span());
  Bytes tree_len;
  ByteWriter(&tree_len).U16(static_cast<uint16_t>(g.tree.size()));
  secret->Append(tree_len);
  secret->Append(g.tree.span());
}

bool DecodeGroupParts(uint64_t key, std::span<const uint8_t> clear,
                      std::span<const uint8_t> secret, GroupDesc* g) {
  if (key == 0 || key > std::numeric_limits<uint32_t>::max()) return false;
  g->group_id = static_cast<uint32_t>(key);
  ByteReader c(clear);
  uint8_t name_len = 0, mode = 0;
  uint16_t n = 0;
  std::span<const uint8_t> name;
  if (!c.U8(&name_len) || !c.View(name_len, &name)) return false;
  g->name.assign(name.begin(), name.end());
  if (!ValidateGroupName(g->name).ok() || !c.U8(&mode) || mode > 1 ||
      !c.U32(&g->lifetime_s) || !c.U32(&g->key_version) ||
      !c.U64(&g->rekeyed_unix_ms) || !c.U16(&n) || n > kMaxGroupMembers ||
      c.remaining() != n * (4 + kEd25519PublicSize)) {
    return false;
  }
  g->mode = static_cast<GroupMode>(mode);
  g->members.resize(n);
  for (GroupMember& m : g->members) {
    std::span<const uint8_t> pub;
    c.U32(&m.n_id);
    c.View(kEd25519PublicSize, &pub);
    std::copy(pub.begin(), pub.end(), m.sign_public.begin());
  }
  for (size_t i = 1; i < g->members.size(); ++i) {
    if (g->members[i - 1].n_id >= g->members[i].n_id) return false;
  }
  ByteReader s(secret);
  uint8_t flags = 0, sign_len = 0;
  uint16_t tree_len = 0;
  std::span<const uint8_t> rekey, data;
  if (!s.U8(&flags) || flags != 0 || !s.View(kTopicIdSize, &rekey) ||
      !s.View(kTopicIdSize, &data) || !s.U8(&sign_len) ||
      (sign_len != 0 && sign_len != 32) || !s.Secret(sign_len, &g->sign_key) ||
      !s.U16(&tree_len) || tree_len > kMaxGroupTreeState ||
      !s.Secret(tree_len, &g->tree) || !s.done()) {
    return false;
  }
  std::copy(rekey.begin(), rekey.end(), g->rekey_topic.begin());
  std::copy(data.begin(), data.end(), g->data_topic.begin());
  return true;
}

}  // namespace kgr
