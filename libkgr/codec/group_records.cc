// The grp_keys record of a node (GroupRecord; format: docs/storage.md
// section 1.5): its Ed25519 key pair, each group's keys, each member's
// public key and receive floor. The envelope is records.cc's.
#include <algorithm>
#include <limits>

#include "codec/record_envelope.h"
#include "kgr/records.h"

namespace kgr {
namespace {

using records_internal::Open;
using records_internal::Opened;
using records_internal::Seal;

constexpr uint8_t kFlagGroupKey = 0x01;
constexpr uint8_t kFlagPrevKey = 0x02;

Status CorruptGroupRecord() { return DataLossError(kVerificationFailed); }

Status CheckGroup(const GroupRecord& g) {
  auto key_ok = [](const SecretBytes& k) {
    return k.empty() || k.size() == kGroupKeySize;
  };
  if (g.mode > 1) return InvalidArgumentError("grp_keys: unknown mode");
  if (!key_ok(g.group_key) || !key_ok(g.prev_group_key)) {
    return InvalidArgumentError("grp_keys: a group key is 32 bytes");
  }
  if (g.prev_group_key.empty() != (g.prev_version == 0)) {
    return InvalidArgumentError("grp_keys: previous key without version");
  }
  if (g.path_keys.size() > kMaxGroupPathBytes) {
    return InvalidArgumentError("grp_keys: path keys too long");
  }
  return OkStatus();
}

Status EncodeGroup(const GroupRecord& g, Bytes* clear, SecretBytes* secret) {
  KGR_RETURN_IF_ERROR(CheckGroup(g));
  ByteWriter w(clear);
  w.U8(g.mode);
  w.U32(g.key_version);
  w.U32(g.prev_version);
  w.U64(g.prev_until_unix_ms);
  w.Raw(g.rekey_topic);
  w.Raw(g.data_topic);
  w.Raw(g.ks_sign_public);
  const uint8_t flags =
      static_cast<uint8_t>((g.group_key.empty() ? 0 : kFlagGroupKey) |
                           (g.prev_group_key.empty() ? 0 : kFlagPrevKey));
  secret->Append(std::span<const uint8_t>(&flags, 1));
  secret->Append(g.group_key.span());
  secret->Append(g.prev_group_key.span());
  const uint8_t len[2] = {static_cast<uint8_t>(g.path_keys.size() >> 8),
                          static_cast<uint8_t>(g.path_keys.size())};
  secret->Append(len);
  secret->Append(g.path_keys.span());
  return OkStatus();
}

bool DecodeGroup(ByteReader& c, ByteReader& s, GroupRecord* g) {
  uint8_t flags = 0;
  uint16_t path_len = 0;
  std::span<const uint8_t> rekey, data, sign;
  if (!c.U8(&g->mode) || g->mode > 1 || !c.U32(&g->key_version) ||
      !c.U32(&g->prev_version) || !c.U64(&g->prev_until_unix_ms) ||
      !c.View(kTopicIdSize, &rekey) || !c.View(kTopicIdSize, &data) ||
      !c.View(kEd25519PublicSize, &sign) || !s.U8(&flags) ||
      (flags & ~(kFlagGroupKey | kFlagPrevKey)) != 0) {
    return false;
  }
  std::copy(rekey.begin(), rekey.end(), g->rekey_topic.begin());
  std::copy(data.begin(), data.end(), g->data_topic.begin());
  std::copy(sign.begin(), sign.end(), g->ks_sign_public.begin());
  if ((flags & kFlagGroupKey) && !s.Secret(kGroupKeySize, &g->group_key))
    return false;
  if ((flags & kFlagPrevKey) && !s.Secret(kGroupKeySize, &g->prev_group_key))
    return false;
  if (((flags & kFlagPrevKey) != 0) != (g->prev_version != 0)) return false;
  return s.U16(&path_len) && path_len <= kMaxGroupPathBytes &&
         s.Secret(path_len, &g->path_keys);
}

}  // namespace

StatusOr<Bytes> RecordCodec::Encode(const GroupRecord& g) const {
  Bytes clear;
  SecretBytes secret;
  switch (g.kind()) {
    case GroupRecord::Kind::kSigningKey:
      if (g.member != 0 || g.public_key.size() != 32 ||
          g.private_key.size() != 32) {
        return InvalidArgumentError("grp_keys: signing key needs both halves");
      }
      clear = g.public_key;
      secret.Append(g.private_key.span());
      break;
    case GroupRecord::Kind::kGroup:
      KGR_RETURN_IF_ERROR(EncodeGroup(g, &clear, &secret));
      break;
    case GroupRecord::Kind::kMember: {
      if (!g.public_key.empty() && g.public_key.size() != 32) {
        return InvalidArgumentError("grp_keys: a public key is 32 bytes");
      }
      ByteWriter w(&clear);
      w.U64(g.rx_counter);
      w.U8(static_cast<uint8_t>(g.public_key.size()));
      w.Raw(g.public_key);
      break;
    }
  }
  return Seal(RecordType::kGrpKeys, g.key(), clear, secret.span(), keys_,
              context_);
}

template <>
StatusOr<GroupRecord> RecordCodec::Decode<GroupRecord>(
    std::span<const uint8_t> record) const {
  KGR_ASSIGN_OR_RETURN(Opened o,
                       Open(record, RecordType::kGrpKeys, keys_, context_));
  GroupRecord g;
  g.group_id = static_cast<uint32_t>(o.key >> 32);
  g.member = static_cast<uint32_t>(o.key);
  ByteReader c(o.clear);
  ByteReader s(o.secret.span());
  bool ok = false;
  switch (g.kind()) {
    case GroupRecord::Kind::kSigningKey:
      ok = g.member == 0 && c.Raw(32, &g.public_key) &&
           s.Secret(32, &g.private_key);
      break;
    case GroupRecord::Kind::kGroup:
      ok = DecodeGroup(c, s, &g);
      break;
    case GroupRecord::Kind::kMember: {
      uint8_t pk_len = 0;
      ok = c.U64(&g.rx_counter) && c.U8(&pk_len) &&
           (pk_len == 0 || pk_len == 32) && c.Raw(pk_len, &g.public_key);
      break;
    }
  }
  if (!ok || !c.done() || !s.done()) return CorruptGroupRecord();
  return g;
}

}  // namespace kgr
