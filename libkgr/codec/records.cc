// Record envelope and the record codecs (format: docs/storage.md).
#include "kgr/records.h"

#include <limits>
#include <utility>

#include "codec/record_envelope.h"

namespace kgr {
namespace {

constexpr char kRecordContext[] = "KGR-REC1";  // 8 bytes, MAC domain
constexpr char kNkCheckLabel[] = "KGR-NK-CHECK";
// version, type, key, clear_len
constexpr size_t kEnvelopeHeaderSize = 1 + 1 + 8 + 2;
constexpr size_t kContextSize = 8 + 4 + 32;

// Flags of the secret parts.
constexpr uint8_t kFlagKeys = 0x01;
constexpr uint8_t kFlagTopicA = 0x02;
constexpr uint8_t kFlagTopicB = 0x04;
constexpr uint8_t kFlagPrevKeys = 0x08;    // node_desc: NKSK before a rotation
constexpr uint8_t kFlagNkskUnused = 0x10;  // node_desc: NodeDesc::nksk_unused
// ses_keys: the other key of a renewal under way and its topics.
constexpr uint8_t kFlagOtherKeys = 0x08;
constexpr uint8_t kFlagOtherTopicA = 0x10;
constexpr uint8_t kFlagOtherTopicB = 0x20;

Status VerificationFailed() { return DataLossError(kVerificationFailed); }

bool KnownType(uint8_t t) { return (t >= 1 && t <= 4) || t == 6; }

// "KGR-REC1" || owner || SHA-256("KGR-NK-CHECK" || NK): bound by every tag
// but not stored. The NK check makes a record unreadable under a wrong NK
// even if NKsign is right (encrypt-then-MAC alone would decrypt garbage).
// Empty if `keys` are not valid (every use checks them first).
Bytes MakeContext(const RecordKeys& keys, uint32_t owner_n_id) {
  if (!keys.valid()) return {};
  Bytes ctx;
  ctx.reserve(kContextSize);
  ByteWriter w(&ctx);
  w.Str(std::string_view(kRecordContext, 8));
  w.U32(owner_n_id);
  w.Raw(Sha256({AsBytes(kNkCheckLabel), keys.RawEncKeyBytes().span()}));
  return ctx;
}

// The parsed, not yet verified, envelope.
struct Envelope {
  uint8_t type = 0;
  uint64_t key = 0;
  std::span<const uint8_t> clear;
  size_t iv_offset = 0;
  std::span<const uint8_t> ciphertext;
  std::span<const uint8_t> tag;
  size_t ciphertext_offset = 0;
  size_t tag_offset = 0;
};

StatusOr<Envelope> ParseEnvelope(std::span<const uint8_t> record,
                                 RecordType expected) {
  if (record.size() > kMaxRecordSize) {
    return InvalidArgumentError("record: too long");
  }
  ByteReader r(record);
  Envelope e;
  uint8_t version;
  uint16_t clear_len, ct_len;
  std::span<const uint8_t> iv;
  if (!r.U8(&version)) return InvalidArgumentError("record: truncated");
  if (version != kRecordVersion) {
    return InvalidArgumentError("record: unknown version " +
                                std::to_string(version));
  }
  if (!r.U8(&e.type)) return InvalidArgumentError("record: truncated");
  if (!KnownType(e.type)) {
    return InvalidArgumentError("record: unknown type " +
                                std::to_string(e.type));
  }
  if (e.type != static_cast<uint8_t>(expected)) {
    return InvalidArgumentError(
        "record: type " +
        std::string(RecordTypeName(static_cast<RecordType>(e.type))) +
        ", expected " + std::string(RecordTypeName(expected)));
  }
  if (!r.U64(&e.key) || !r.U16(&clear_len) || !r.View(clear_len, &e.clear)) {
    return InvalidArgumentError("record: truncated");
  }
  e.iv_offset = r.position();
  if (!r.View(kIvSize, &iv) || !r.U16(&ct_len)) {
    return InvalidArgumentError("record: truncated");
  }
  e.ciphertext_offset = r.position();
  if (!r.View(ct_len, &e.ciphertext))
    return InvalidArgumentError("record: truncated");
  e.tag_offset = r.position();
  if (!r.View(kTagSize, &e.tag))
    return InvalidArgumentError("record: truncated");
  if (!r.done()) return InvalidArgumentError("record: trailing bytes");
  return e;
}

}  // namespace

namespace records_internal {

StatusOr<Bytes> Seal(RecordType type, uint64_t key,
                     std::span<const uint8_t> clear,
                     std::span<const uint8_t> secret, const RecordKeys& keys,
                     std::span<const uint8_t> context) {
  if (!keys.valid())
    return InvalidArgumentError("record keys: need NK and NKsign");
  if (clear.size() > std::numeric_limits<uint16_t>::max() ||
      secret.size() > std::numeric_limits<uint16_t>::max() ||
      kEnvelopeHeaderSize + clear.size() + kIvSize + 2 + secret.size() +
              kTagSize >
          kMaxRecordSize) {
    return InvalidArgumentError("record: too long");
  }
  Bytes out;
  out.reserve(kContextSize + kEnvelopeHeaderSize + clear.size() + kIvSize + 2 +
              secret.size() + kTagSize);
  ByteWriter w(&out);
  w.Raw(context);
  w.U8(kRecordVersion);
  w.U8(static_cast<uint8_t>(type));
  w.U64(key);
  w.U16(static_cast<uint16_t>(clear.size()));
  w.Raw(clear);
  const size_t iv_at = out.size();
  w.Raw(Iv{});  // EtmSeal draws the IV and puts it here
  w.U16(static_cast<uint16_t>(secret.size()));
  KGR_RETURN_IF_ERROR(EtmSeal(keys, iv_at, secret, &out, /*mac_from=*/0));
  out.erase(out.begin(), out.begin() + kContextSize);
  return out;
}

StatusOr<Opened> Open(std::span<const uint8_t> record, RecordType type,
                      const RecordKeys& keys,
                      std::span<const uint8_t> context) {
  if (!keys.valid())
    return InvalidArgumentError("record keys: need NK and NKsign");
  KGR_ASSIGN_OR_RETURN(Envelope e, ParseEnvelope(record, type));
  Bytes auth;
  auth.reserve(kContextSize + e.tag_offset);
  auth.insert(auth.end(), context.begin(), context.end());
  auth.insert(auth.end(), record.begin(), record.begin() + e.tag_offset);
  StatusOr<SecretBytes> pt = EtmOpen(keys, auth, kContextSize + e.iv_offset,
                                     kContextSize + e.ciphertext_offset, e.tag);
  if (!pt.ok()) {
    if (pt.status().code() == StatusCode::kUnauthenticated)
      return VerificationFailed();
    return pt.status();
  }
  Opened o;
  o.key = e.key;
  o.clear = e.clear;
  o.secret = std::move(pt).value();
  return o;
}

StatusOr<Bytes> SealParts(RecordType type, uint64_t key,
                          std::span<const uint8_t> clear,
                          std::span<const uint8_t> secret,
                          const RecordKeys& keys, uint32_t owner_n_id) {
  return Seal(type, key, clear, secret, keys, MakeContext(keys, owner_n_id));
}
}  // namespace records_internal

namespace {

using records_internal::Open;
using records_internal::Opened;
using records_internal::Seal;

// Helpers for the secret part (a SecretBytes being built).
void PutU32(SecretBytes* s, uint32_t v) {
  uint8_t b[4] = {static_cast<uint8_t>(v >> 24), static_cast<uint8_t>(v >> 16),
                  static_cast<uint8_t>(v >> 8), static_cast<uint8_t>(v)};
  s->Append(b);
}
void PutU8(SecretBytes* s, uint8_t v) {
  s->Append(std::span<const uint8_t>(&v, 1));
}
void PutKeys(SecretBytes* s, const SymmetricKeys& k) {
  s->Append(k.RawEncKeyBytes().span());
  s->Append(k.RawMacKeyBytes().span());
}
void PutTopic(SecretBytes* s, const Topic& t) {
  if (t.has_value()) s->Append(*t);
}

bool ReadKeys(ByteReader* r, SymmetricKeys* k) {
  std::span<const uint8_t> enc, mac;
  if (!r->View(kKeySize, &enc) || !r->View(kKeySize, &mac)) return false;
  *k = SymmetricKeys(SecretBytes(enc), SecretBytes(mac));
  return true;
}
bool ReadTopic(ByteReader* r, bool present, Topic* t) {
  if (!present) {
    t->reset();
    return true;
  }
  std::span<const uint8_t> v;
  if (!r->View(kTopicSize, &v)) return false;
  TopicBytes b;
  std::copy(v.begin(), v.end(), b.begin());
  *t = b;
  return true;
}

// Authenticated content that does not parse: only a bug or a forged record
// under our own keys gets here; treat like a failed verification.
Status Malformed() { return DataLossError(kVerificationFailed); }

Status CheckKeyPair(const SymmetricKeys& k, bool may_be_empty,
                    const char* what) {
  if (k.valid()) return OkStatus();
  if (may_be_empty && k.empty()) return OkStatus();
  return InvalidArgumentError(std::string(what) + ": need two 32-byte keys" +
                              (may_be_empty ? " or none" : ""));
}

bool ValidState(uint8_t s) { return s >= 1 && s <= 3; }

}  // namespace

std::string_view RecordTypeName(RecordType type) {
  switch (type) {
    case RecordType::kNodeDesc:
      return "node_desc";
    case RecordType::kGenKey:
      return "gen_keys";
    case RecordType::kSesKey:
      return "ses_keys";
    case RecordType::kGrpKeys:
      return "grp_keys";
    case RecordType::kGroupDesc:
      return "groups";
  }
  return "unknown";
}

namespace {

// ---- node_desc ----

StatusOr<Bytes> Encode(const NodeDesc& d, const RecordKeys& keys,
                       std::span<const uint8_t> context) {
  if (d.ntag.size() != kRecordNtagSize)
    return InvalidArgumentError("node_desc: NTAG must be 32 bytes");
  if (!ValidState(static_cast<uint8_t>(d.state))) {
    return InvalidArgumentError("node_desc: bad state");
  }
  if (d.allowed_peers.size() > kMaxAllowedPeers) {
    return InvalidArgumentError("node_desc: too many allowed peers");
  }
  KGR_RETURN_IF_ERROR(CheckKeyPair(d.nksk, true, "node_desc: NKSK"));
  Bytes clear;
  clear.reserve(33 + 4 * d.allowed_peers.size());
  ByteWriter w(&clear);
  w.U16(d.entry_no);
  w.U8(static_cast<uint8_t>(d.state));
  w.U64(d.last_counter);
  w.U32(d.nksk_version);
  w.U64(d.registered_unix_ms);
  w.U16(static_cast<uint16_t>(d.allowed_peers.size()));
  for (uint32_t p : d.allowed_peers) w.U32(p);
  // Without a floor the record keeps the layout of older releases.
  if (d.request_floor != 0) w.U64(d.request_floor);
  KGR_RETURN_IF_ERROR(
      CheckKeyPair(d.prev_nksk, true, "node_desc: previous NKSK"));
  SecretBytes secret;
  secret.Reserve(1 + kRecordNtagSize + 4 * kKeySize + kTopicSize);
  bool has_keys = d.nksk.valid();
  bool has_prev = d.prev_nksk.valid();
  PutU8(&secret, static_cast<uint8_t>((has_keys ? kFlagKeys : 0) |
                                      (d.topic2 ? kFlagTopicA : 0) |
                                      (has_prev ? kFlagPrevKeys : 0) |
                                      (d.nksk_unused ? kFlagNkskUnused : 0)));
  secret.Append(d.ntag.span());
  if (has_keys) PutKeys(&secret, d.nksk);
  PutTopic(&secret, d.topic2);
  if (has_prev) PutKeys(&secret, d.prev_nksk);
  return Seal(RecordType::kNodeDesc, d.n_id, clear, secret.span(), keys,
              context);
}

StatusOr<NodeDesc> DecodeNodeDesc(std::span<const uint8_t> record,
                                  const RecordKeys& keys,
                                  std::span<const uint8_t> context) {
  KGR_ASSIGN_OR_RETURN(Opened o,
                       Open(record, RecordType::kNodeDesc, keys, context));
  NodeDesc d;
  if (o.key > std::numeric_limits<uint32_t>::max()) return Malformed();
  d.n_id = static_cast<uint32_t>(o.key);
  ByteReader c(o.clear);
  uint8_t state;
  uint16_t n_peers;
  if (!c.U16(&d.entry_no) || !c.U8(&state) || !ValidState(state) ||
      !c.U64(&d.last_counter) || !c.U32(&d.nksk_version) ||
      !c.U64(&d.registered_unix_ms) || !c.U16(&n_peers) ||
      n_peers > kMaxAllowedPeers) {
    return Malformed();
  }
  // Records written before request_floor end after the peer list.
  size_t peers_size = size_t{n_peers} * 4;
  if (c.remaining() != peers_size && c.remaining() != peers_size + 8) {
    return Malformed();
  }
  d.state = static_cast<NodeState>(state);
  d.allowed_peers.resize(n_peers);
  for (uint32_t& p : d.allowed_peers) c.U32(&p);
  if (c.remaining() == 8) c.U64(&d.request_floor);
  ByteReader s(o.secret.span());
  uint8_t flags;
  if (!s.U8(&flags) ||
      (flags & ~(kFlagKeys | kFlagTopicA | kFlagPrevKeys | kFlagNkskUnused)) !=
          0 ||
      !s.Secret(kRecordNtagSize, &d.ntag) ||
      ((flags & kFlagKeys) && !ReadKeys(&s, &d.nksk)) ||
      !ReadTopic(&s, flags & kFlagTopicA, &d.topic2) ||
      ((flags & kFlagPrevKeys) && !ReadKeys(&s, &d.prev_nksk)) || !s.done()) {
    return Malformed();
  }
  d.nksk_unused = (flags & kFlagNkskUnused) != 0;
  return d;
}

// ---- gen_keys ----

StatusOr<Bytes> Encode(const GenKey& g, const RecordKeys& keys,
                       std::span<const uint8_t> context) {
  if (g.tombstone()) {
    if (!g.nnsk.empty()) {
      return InvalidArgumentError("gen_keys: a tombstone holds no key");
    }
  } else {
    KGR_RETURN_IF_ERROR(CheckKeyPair(g.nnsk, false, "gen_keys: NNSK"));
  }
  Bytes clear;
  clear.reserve(18);
  ByteWriter w(&clear);
  w.U32(g.n_id1);
  w.U64(g.ctime_unix_ms);
  w.U8(g.step);
  w.U8(g.renewal ? 1 : 0);
  w.U32(g.version);
  SecretBytes secret;
  secret.Reserve(5 + 2 * kKeySize + 2 * kTopicSize);
  PutU8(&secret, static_cast<uint8_t>((g.topic3 ? kFlagTopicA : 0) |
                                      (g.topic4 ? kFlagTopicB : 0)));
  PutU32(&secret, g.n_id2);
  if (!g.tombstone()) PutKeys(&secret, g.nnsk);
  PutTopic(&secret, g.topic3);
  PutTopic(&secret, g.topic4);
  return Seal(RecordType::kGenKey, g.request_id, clear, secret.span(), keys,
              context);
}

StatusOr<GenKey> DecodeGenKey(std::span<const uint8_t> record,
                              const RecordKeys& keys,
                              std::span<const uint8_t> context) {
  KGR_ASSIGN_OR_RETURN(Opened o,
                       Open(record, RecordType::kGenKey, keys, context));
  GenKey g;
  g.request_id = o.key;
  ByteReader c(o.clear);
  uint8_t renewal;
  if (!c.U32(&g.n_id1) || !c.U64(&g.ctime_unix_ms) || !c.U8(&g.step) ||
      !c.U8(&renewal) || renewal > 1 || !c.U32(&g.version) || !c.done()) {
    return Malformed();
  }
  g.renewal = renewal == 1;
  ByteReader s(o.secret.span());
  uint8_t flags, id2[4];
  std::span<const uint8_t> id2_view;
  if (!s.U8(&flags) || (flags & ~(kFlagTopicA | kFlagTopicB)) != 0 ||
      !s.View(4, &id2_view) || (!g.tombstone() && !ReadKeys(&s, &g.nnsk)) ||
      !ReadTopic(&s, flags & kFlagTopicA, &g.topic3) ||
      !ReadTopic(&s, flags & kFlagTopicB, &g.topic4) || !s.done()) {
    return Malformed();
  }
  std::copy(id2_view.begin(), id2_view.end(), id2);
  g.n_id2 = (uint32_t{id2[0]} << 24) | (uint32_t{id2[1]} << 16) |
            (uint32_t{id2[2]} << 8) | uint32_t{id2[3]};
  return g;
}

// ---- ses_keys ----

StatusOr<Bytes> Encode(const SesKey& k, const RecordKeys& keys,
                       std::span<const uint8_t> context) {
  KGR_RETURN_IF_ERROR(CheckKeyPair(k.nnsk, true, "ses_keys: NNSK"));
  Bytes clear;
  clear.reserve(40);
  ByteWriter w(&clear);
  w.U64(k.ctime_unix_ms);
  w.U32(k.key_version);
  w.U64(k.frames_sent);
  w.U64(k.bytes_sent);
  w.U64(k.rx_counter);
  KGR_RETURN_IF_ERROR(CheckKeyPair(k.other_nnsk, true, "ses_keys: other NNSK"));
  bool has_keys = k.nnsk.valid();
  bool has_other = k.other_nnsk.valid();
  // Without another key the record keeps the layout of older releases.
  if (has_other) {
    w.U32(k.other_version);
    w.U64(k.other_rx_counter);
  }
  SecretBytes secret;
  secret.Reserve(1 + 4 * kKeySize + 4 * kTopicSize);
  PutU8(&secret,
        static_cast<uint8_t>(
            (has_keys ? kFlagKeys : 0) | (k.topic3 ? kFlagTopicA : 0) |
            (k.topic4 ? kFlagTopicB : 0) | (has_other ? kFlagOtherKeys : 0) |
            (has_other && k.other_topic3 ? kFlagOtherTopicA : 0) |
            (has_other && k.other_topic4 ? kFlagOtherTopicB : 0)));
  if (has_keys) PutKeys(&secret, k.nnsk);
  PutTopic(&secret, k.topic3);
  PutTopic(&secret, k.topic4);
  if (has_other) {
    PutKeys(&secret, k.other_nnsk);
    PutTopic(&secret, k.other_topic3);
    PutTopic(&secret, k.other_topic4);
  }
  return Seal(RecordType::kSesKey, k.n_id, clear, secret.span(), keys, context);
}

StatusOr<SesKey> DecodeSesKey(std::span<const uint8_t> record,
                              const RecordKeys& keys,
                              std::span<const uint8_t> context) {
  KGR_ASSIGN_OR_RETURN(Opened o,
                       Open(record, RecordType::kSesKey, keys, context));
  SesKey k;
  if (o.key > std::numeric_limits<uint32_t>::max()) return Malformed();
  k.n_id = static_cast<uint32_t>(o.key);
  ByteReader c(o.clear);
  if (!c.U64(&k.ctime_unix_ms) || !c.U32(&k.key_version) ||
      !c.U64(&k.frames_sent) || !c.U64(&k.bytes_sent) ||
      !c.U64(&k.rx_counter)) {
    return Malformed();
  }
  ByteReader s(o.secret.span());
  uint8_t flags;
  constexpr uint8_t kOther =
      kFlagOtherKeys | kFlagOtherTopicA | kFlagOtherTopicB;
  if (!s.U8(&flags) ||
      (flags & ~(kFlagKeys | kFlagTopicA | kFlagTopicB | kOther)) != 0 ||
      ((flags & kOther) && !(flags & kFlagOtherKeys)) ||
      ((flags & kFlagOtherKeys)
           ? !c.U32(&k.other_version) || !c.U64(&k.other_rx_counter)
           : false) ||
      !c.done() || ((flags & kFlagKeys) && !ReadKeys(&s, &k.nnsk)) ||
      !ReadTopic(&s, flags & kFlagTopicA, &k.topic3) ||
      !ReadTopic(&s, flags & kFlagTopicB, &k.topic4) ||
      ((flags & kFlagOtherKeys) && !ReadKeys(&s, &k.other_nnsk)) ||
      !ReadTopic(&s, flags & kFlagOtherTopicA, &k.other_topic3) ||
      !ReadTopic(&s, flags & kFlagOtherTopicB, &k.other_topic4) || !s.done()) {
    return Malformed();
  }
  return k;
}

// ---- groups (the parts: group_record.cc) ----

StatusOr<Bytes> Encode(const GroupDesc& g, const RecordKeys& keys,
                       std::span<const uint8_t> context) {
  KGR_RETURN_IF_ERROR(records_internal::CheckGroupParts(g));
  Bytes clear;
  SecretBytes secret;
  EncodeGroupParts(g, &clear, &secret);
  return Seal(RecordType::kGroupDesc, g.key(), clear, secret.span(), keys,
              context);
}

StatusOr<GroupDesc> DecodeGroupDesc(std::span<const uint8_t> record,
                                    const RecordKeys& keys,
                                    std::span<const uint8_t> context) {
  KGR_ASSIGN_OR_RETURN(Opened o,
                       Open(record, RecordType::kGroupDesc, keys, context));
  GroupDesc g;
  if (!DecodeGroupParts(o.key, o.clear, o.secret.span(), &g))
    return Malformed();
  return g;
}

}  // namespace

// ---- public entry points ----

StatusOr<Bytes> EncodeRecord(const NodeDesc& r, const RecordKeys& keys,
                             uint32_t owner_n_id) {
  return RecordCodec(keys, owner_n_id).Encode(r);
}
StatusOr<Bytes> EncodeRecord(const GenKey& r, const RecordKeys& keys,
                             uint32_t owner_n_id) {
  return RecordCodec(keys, owner_n_id).Encode(r);
}
StatusOr<Bytes> EncodeRecord(const SesKey& r, const RecordKeys& keys,
                             uint32_t owner_n_id) {
  return RecordCodec(keys, owner_n_id).Encode(r);
}
StatusOr<Bytes> EncodeRecord(const GroupDesc& r, const RecordKeys& keys,
                             uint32_t owner_n_id) {
  return RecordCodec(keys, owner_n_id).Encode(r);
}

template <>
StatusOr<NodeDesc> DecodeRecord<NodeDesc>(std::span<const uint8_t> record,
                                          const RecordKeys& keys,
                                          uint32_t owner_n_id) {
  return RecordCodec(keys, owner_n_id).Decode<NodeDesc>(record);
}
template <>
StatusOr<GenKey> DecodeRecord<GenKey>(std::span<const uint8_t> record,
                                      const RecordKeys& keys,
                                      uint32_t owner_n_id) {
  return RecordCodec(keys, owner_n_id).Decode<GenKey>(record);
}
template <>
StatusOr<SesKey> DecodeRecord<SesKey>(std::span<const uint8_t> record,
                                      const RecordKeys& keys,
                                      uint32_t owner_n_id) {
  return RecordCodec(keys, owner_n_id).Decode<SesKey>(record);
}
template <>
StatusOr<GroupDesc> DecodeRecord<GroupDesc>(std::span<const uint8_t> record,
                                            const RecordKeys& keys,
                                            uint32_t owner_n_id) {
  return RecordCodec(keys, owner_n_id).Decode<GroupDesc>(record);
}

StatusOr<uint64_t> VerifyRecord(std::span<const uint8_t> record,
                                RecordType type, const RecordKeys& keys,
                                uint32_t owner_n_id) {
  return RecordCodec(keys, owner_n_id).Verify(type, record);
}

RecordCodec::RecordCodec(const RecordKeys& keys, uint32_t owner_n_id)
    : keys_(keys), context_(MakeContext(keys, owner_n_id)) {}

StatusOr<Bytes> RecordCodec::Encode(const NodeDesc& record) const {
  return kgr::Encode(record, keys_, context_);
}
StatusOr<Bytes> RecordCodec::Encode(const GenKey& record) const {
  return kgr::Encode(record, keys_, context_);
}
StatusOr<Bytes> RecordCodec::Encode(const SesKey& record) const {
  return kgr::Encode(record, keys_, context_);
}
StatusOr<Bytes> RecordCodec::Encode(const GroupDesc& record) const {
  return kgr::Encode(record, keys_, context_);
}

template <>
StatusOr<NodeDesc> RecordCodec::Decode<NodeDesc>(
    std::span<const uint8_t> record) const {
  return DecodeNodeDesc(record, keys_, context_);
}
template <>
StatusOr<GenKey> RecordCodec::Decode<GenKey>(
    std::span<const uint8_t> record) const {
  return DecodeGenKey(record, keys_, context_);
}
template <>
StatusOr<SesKey> RecordCodec::Decode<SesKey>(
    std::span<const uint8_t> record) const {
  return DecodeSesKey(record, keys_, context_);
}
template <>
StatusOr<GroupDesc> RecordCodec::Decode<GroupDesc>(
    std::span<const uint8_t> record) const {
  return DecodeGroupDesc(record, keys_, context_);
}

StatusOr<uint64_t> RecordCodec::Verify(RecordType type,
                                       std::span<const uint8_t> record) const {
  if (!keys_.valid())
    return InvalidArgumentError("record keys: need NK and NKsign");
  KGR_ASSIGN_OR_RETURN(Envelope e, ParseEnvelope(record, type));
  Status s =
      VerifyHmacSha256(keys_, {context_, record.first(e.tag_offset)}, e.tag);
  if (!s.ok()) {
    return s.code() == StatusCode::kUnauthenticated ? VerificationFailed() : s;
  }
  return e.key;
}

std::optional<uint64_t> PeekRecordKey(std::span<const uint8_t> record) {
  ByteReader r(record);
  uint8_t version, type;
  uint64_t key;
  if (!r.U8(&version) || !r.U8(&type) || !r.U64(&key)) return std::nullopt;
  return key;
}

}  // namespace kgr
