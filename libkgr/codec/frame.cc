#include "kgr/frame.h"

#include <openssl/crypto.h>

#include <algorithm>

namespace kgr {
namespace {

constexpr char kRegistrationSalt[] = "kgr/v1 registration";

template <size_t N>
void WipeArray(std::array<uint8_t, N>& a) {
  OPENSSL_cleanse(a.data(), a.size());
}

Status Malformed(std::string_view what) {
  return InvalidArgumentError("malformed frame: " + std::string(what));
}

void WriteHeader(const FrameHeader& h, Bytes* out) {
  ByteWriter w(out);
  w.U8(kFrameVersion);
  w.U8(static_cast<uint8_t>(h.type));
  w.U8(h.flags);
  w.U32(h.sender);
  w.U32(h.key_version);
  w.U64(h.counter);
  w.U64(h.request_id);
  w.Raw(h.iv);
  w.U32(h.body_len);
}

Status CheckHeaderForSeal(const FrameHeader& h, size_t body_size) {
  if (!IsKnownFrameType(static_cast<uint8_t>(h.type))) {
    return InvalidArgumentError("unknown frame type");
  }
  if ((h.flags & ~kKnownFlags) != 0)
    return InvalidArgumentError("unknown flags");
  if (body_size > kMaxBodySize) return InvalidArgumentError("body too large");
  return OkStatus();
}

// Parses a header and checks that `frame` is exactly header + body + tail.
StatusOr<FrameHeader> ParseHeader(std::span<const uint8_t> frame, size_t tail) {
  if (frame.size() < kFrameHeaderSize + tail) return Malformed("too short");
  ByteReader r(frame);
  uint8_t version = 0, type = 0;
  FrameHeader h;
  std::span<const uint8_t> iv;
  r.U8(&version);
  r.U8(&type);
  r.U8(&h.flags);
  r.U32(&h.sender);
  r.U32(&h.key_version);
  r.U64(&h.counter);
  r.U64(&h.request_id);
  r.View(kIvSize, &iv);
  r.U32(&h.body_len);
  if (version != kFrameVersion) {
    return InvalidArgumentError("unsupported frame version " +
                                std::to_string(version));
  }
  if (!IsKnownFrameType(type)) {
    return InvalidArgumentError("unknown frame type " + std::to_string(type));
  }
  h.type = static_cast<FrameType>(type);
  if ((h.flags & ~kKnownFlags) != 0) return Malformed("unknown flags");
  if (h.body_len > kMaxBodySize) return Malformed("body too large");
  if (frame.size() != kFrameHeaderSize + h.body_len + tail) {
    return Malformed("length does not match header");
  }
  std::copy(iv.begin(), iv.end(), h.iv.begin());
  return h;
}

// Body parsing helpers: every Parse ends with Done().
class BodyReader {
 public:
  explicit BodyReader(std::span<const uint8_t> in) : r_(in) {}
  void U8(uint8_t* v) { ok_ = ok_ && r_.U8(v); }
  void U16(uint16_t* v) { ok_ = ok_ && r_.U16(v); }
  void U32(uint32_t* v) { ok_ = ok_ && r_.U32(v); }
  void Topic(TopicId* t) {
    std::span<const uint8_t> s;
    ok_ = ok_ && r_.View(kTopicIdSize, &s);
    if (ok_) std::copy(s.begin(), s.end(), t->begin());
  }
  void Secret(size_t n, SecretBytes* s) { ok_ = ok_ && r_.Secret(n, s); }
  void Keys(SymmetricKeys* k) {
    Secret(kKeySize, &k->enc);
    Secret(kKeySize, &k->mac);
  }
  // A u16 count then that many u32 ids.
  void Ids(std::vector<uint32_t>* ids) {
    uint16_t n = 0;
    U16(&n);
    if (ok_ && n > kMaxPeers) bounds_ = false;
    if (!ok_ || !bounds_ || r_.remaining() < 4u * n) {
      ok_ = false;
      return;
    }
    ids->resize(n);
    for (auto& id : *ids) U32(&id);
  }
  // The rest of the input, bounded by `max`.
  void Rest(size_t max, SecretBytes* s) {
    if (r_.remaining() > max) bounds_ = false;
    Secret(r_.remaining(), s);
  }
  size_t remaining() const { return r_.remaining(); }
  void Fail() { ok_ = false; }
  Status Done(std::string_view what) const {
    if (!bounds_)
      return Malformed(std::string(what) + ": field over its bound");
    if (!ok_) return Malformed(std::string(what) + ": truncated body");
    if (!r_.done()) return Malformed(std::string(what) + ": trailing bytes");
    return OkStatus();
  }

 private:
  ByteReader r_;
  bool ok_ = true;
  bool bounds_ = true;
};

void WriteIds(ByteWriter& w, const std::vector<uint32_t>& ids) {
  w.U16(static_cast<uint16_t>(ids.size()));
  for (uint32_t id : ids) w.U32(id);
}

void WriteKeys(ByteWriter& w, const SymmetricKeys& k) {
  w.Raw(k.enc.span());
  w.Raw(k.mac.span());
}

}  // namespace

std::string_view FrameTypeName(FrameType type) {
  switch (type) {
    case FrameType::kNkskKeyReq:
      return "nksk_key_req";
    case FrameType::kNkskKeyAns:
      return "nksk_key_ans";
    case FrameType::kNnskKeyReq:
      return "nnsk_key_req";
    case FrameType::kNnskKeyAns:
      return "nnsk_key_ans";
    case FrameType::kNnskNotReq:
      return "nnsk_not_req";
    case FrameType::kNnskNotAns:
      return "nnsk_not_ans";
    case FrameType::kNnskConfReq:
      return "nnsk_conf_req";
    case FrameType::kNnskConfAns:
      return "nnsk_conf_ans";
    case FrameType::kKsError:
      return "ks_error";
    case FrameType::kPairRevoked:
      return "pair_revoked";
    case FrameType::kNkskRotReq:
      return "nksk_rot_req";
    case FrameType::kNkskRotAns:
      return "nksk_rot_ans";
    case FrameType::kNkskRotSig:
      return "nksk_rot_sig";
    case FrameType::kNodeDataReq:
      return "node_data_req";
    case FrameType::kNodeDataAns:
      return "node_data_ans";
    case FrameType::kAcAuthorizeReq:
      return "ac_authorize_req";
    case FrameType::kAcAuthorizeAns:
      return "ac_authorize_ans";
    case FrameType::kAcPeersReq:
      return "ac_peers_req";
    case FrameType::kAcPeersAns:
      return "ac_peers_ans";
    case FrameType::kAcListReq:
      return "ac_list_req";
    case FrameType::kAcListAns:
      return "ac_list_ans";
    case FrameType::kAcRevokeReq:
      return "ac_revoke_req";
    case FrameType::kAcRevokeAns:
      return "ac_revoke_ans";
  }
  return "unknown";
}

bool IsKnownFrameType(uint8_t t) {
  return (t >= 0x01 && t <= 0x0D) || t == 0x10 || t == 0x11 ||
         (t >= 0x20 && t <= 0x27);
}

StatusOr<FrameHeader> PeekFrameHeader(std::span<const uint8_t> frame) {
  KGR_ASSIGN_OR_RETURN(FrameHeader h, ParseHeader(frame, kTagSize));
  if (IsAcFrameType(h.type)) return Malformed("AC frame outside CMS");
  return h;
}

StatusOr<Bytes> SealFrameWithIv(FrameHeader header, const Iv& iv,
                                std::span<const uint8_t> body,
                                const SymmetricKeys& keys) {
  KGR_RETURN_IF_ERROR(CheckHeaderForSeal(header, body.size()));
  if (IsAcFrameType(header.type)) {
    return InvalidArgumentError("AC frames are sent as clear frames in CMS");
  }
  header.iv = iv;
  header.body_len = static_cast<uint32_t>(body.size());
  Bytes out;
  out.reserve(kFrameOverhead + body.size());
  WriteHeader(header, &out);
  KGR_RETURN_IF_ERROR(EtmSeal(keys, iv, body, &out));
  return out;
}

StatusOr<Bytes> SealFrame(FrameHeader header, std::span<const uint8_t> body,
                          const SymmetricKeys& keys) {
  KGR_ASSIGN_OR_RETURN(Iv iv, RandomIv());
  return SealFrameWithIv(header, iv, body, keys);
}

StatusOr<SecretBytes> OpenFrame(std::span<const uint8_t> frame,
                                const SymmetricKeys& keys,
                                FrameHeader* header) {
  KGR_ASSIGN_OR_RETURN(*header, PeekFrameHeader(frame));
  auto authenticated = frame.first(frame.size() - kTagSize);
  return EtmOpen(keys, header->iv, authenticated,
                 authenticated.subspan(kFrameHeaderSize), frame.last(kTagSize));
}

StatusOr<Bytes> EncodeClearFrame(FrameHeader header,
                                 std::span<const uint8_t> body) {
  KGR_RETURN_IF_ERROR(CheckHeaderForSeal(header, body.size()));
  if (!IsAcFrameType(header.type)) {
    return InvalidArgumentError("only AC frames travel as clear frames");
  }
  header.iv = Iv{};
  header.body_len = static_cast<uint32_t>(body.size());
  Bytes out;
  WriteHeader(header, &out);
  ByteWriter(&out).Raw(body);
  return out;
}

StatusOr<std::span<const uint8_t>> DecodeClearFrame(
    std::span<const uint8_t> frame, FrameHeader* header) {
  KGR_ASSIGN_OR_RETURN(*header, ParseHeader(frame, 0));
  if (!IsAcFrameType(header->type)) return Malformed("not an AC frame");
  if (header->iv != Iv{}) return Malformed("clear frame with an IV");
  return frame.subspan(kFrameHeaderSize);
}

StatusOr<SymmetricKeys> RegistrationKeys(const SecretBytes& ntag, uint32_t n_id,
                                         FrameType direction) {
  std::string_view label;
  if (direction == FrameType::kNkskKeyReq) {
    label = "nksk_key_req";
  } else if (direction == FrameType::kNkskKeyAns) {
    label = "nksk_key_ans";
  } else {
    return InvalidArgumentError("registration keys exist for nksk_* only");
  }
  if (ntag.size() != kNtagSize) return InvalidArgumentError("NTAG size");
  Bytes info(label.begin(), label.end());
  ByteWriter(&info).U32(n_id);
  return DeriveKeys(ntag.span(), AsBytes(kRegistrationSalt), info);
}

uint64_t RegistrationRequestId(const SecretBytes& ntag) {
  Digest d = Sha256({AsBytes("kgr/v1 registration request"), ntag.span()});
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | d[i];
  return v;
}

SecretBytes ComputeNtag(uint32_t n_id, std::span<const uint8_t> kedk_public,
                        uint16_t entry_no, std::span<const uint8_t> salt) {
  uint8_t id[4] = {static_cast<uint8_t>(n_id >> 24),
                   static_cast<uint8_t>(n_id >> 16),
                   static_cast<uint8_t>(n_id >> 8), static_cast<uint8_t>(n_id)};
  uint8_t entry[2] = {static_cast<uint8_t>(entry_no >> 8),
                      static_cast<uint8_t>(entry_no)};
  Digest d = Sha256({id, kedk_public, entry, salt});
  SecretBytes ntag(d);
  WipeArray(d);
  return ntag;
}

// ---- bodies ----

void NkskKeyReq::EncodeTo(Bytes* out) const {
  ByteWriter w(out);
  w.U32(n_id);
  w.Raw(ntag.span());
  w.Raw(topic2);
}
StatusOr<NkskKeyReq> NkskKeyReq::Parse(std::span<const uint8_t> in) {
  NkskKeyReq m;
  BodyReader r(in);
  r.U32(&m.n_id);
  r.Secret(kNtagSize, &m.ntag);
  r.Topic(&m.topic2);
  KGR_RETURN_IF_ERROR(r.Done("nksk_key_req"));
  return m;
}

void NkskKeyAns::EncodeTo(Bytes* out) const {
  ByteWriter w(out);
  WriteKeys(w, nksk);
  w.Raw(topic1);
}
StatusOr<NkskKeyAns> NkskKeyAns::Parse(std::span<const uint8_t> in) {
  NkskKeyAns m;
  BodyReader r(in);
  r.Keys(&m.nksk);
  r.Topic(&m.topic1);
  KGR_RETURN_IF_ERROR(r.Done("nksk_key_ans"));
  return m;
}

void NnskKeyReq::EncodeTo(Bytes* out) const {
  ByteWriter w(out);
  w.U32(n_id2);
  w.U32(version);
  w.Raw(topic3);
}
StatusOr<NnskKeyReq> NnskKeyReq::Parse(std::span<const uint8_t> in) {
  NnskKeyReq m;
  BodyReader r(in);
  r.U32(&m.n_id2);
  r.U32(&m.version);
  r.Topic(&m.topic3);
  KGR_RETURN_IF_ERROR(r.Done("nnsk_key_req"));
  return m;
}

void NnskKeyAns::EncodeTo(Bytes* out) const {
  ByteWriter w(out);
  w.U32(n_id1);
  w.U32(n_id2);
  w.U32(version);
  WriteKeys(w, nnsk);
}
StatusOr<NnskKeyAns> NnskKeyAns::Parse(std::span<const uint8_t> in) {
  NnskKeyAns m;
  BodyReader r(in);
  r.U32(&m.n_id1);
  r.U32(&m.n_id2);
  r.U32(&m.version);
  r.Keys(&m.nnsk);
  KGR_RETURN_IF_ERROR(r.Done("nnsk_key_ans"));
  return m;
}

void NnskNotReq::EncodeTo(Bytes* out) const {
  ByteWriter w(out);
  w.U32(n_id1);
  w.U32(version);
  WriteKeys(w, nnsk);
  w.Raw(topic3);
}
StatusOr<NnskNotReq> NnskNotReq::Parse(std::span<const uint8_t> in) {
  NnskNotReq m;
  BodyReader r(in);
  r.U32(&m.n_id1);
  r.U32(&m.version);
  r.Keys(&m.nnsk);
  r.Topic(&m.topic3);
  KGR_RETURN_IF_ERROR(r.Done("nnsk_not_req"));
  return m;
}

void NnskNotAns::EncodeTo(Bytes* out) const {
  ByteWriter w(out);
  w.U32(n_id1);
  w.U32(n_id2);
  w.Raw(topic4);
}
StatusOr<NnskNotAns> NnskNotAns::Parse(std::span<const uint8_t> in) {
  NnskNotAns m;
  BodyReader r(in);
  r.U32(&m.n_id1);
  r.U32(&m.n_id2);
  r.Topic(&m.topic4);
  KGR_RETURN_IF_ERROR(r.Done("nnsk_not_ans"));
  return m;
}

void NnskConfReq::EncodeTo(Bytes* out) const {
  ByteWriter w(out);
  w.U32(n_id1);
  w.U32(n_id2);
  w.Raw(topic4);
}
StatusOr<NnskConfReq> NnskConfReq::Parse(std::span<const uint8_t> in) {
  NnskConfReq m;
  BodyReader r(in);
  r.U32(&m.n_id1);
  r.U32(&m.n_id2);
  r.Topic(&m.topic4);
  KGR_RETURN_IF_ERROR(r.Done("nnsk_conf_req"));
  return m;
}

void NnskConfAns::EncodeTo(Bytes* out) const { ByteWriter(out).U32(n_id2); }
StatusOr<NnskConfAns> NnskConfAns::Parse(std::span<const uint8_t> in) {
  NnskConfAns m;
  BodyReader r(in);
  r.U32(&m.n_id2);
  KGR_RETURN_IF_ERROR(r.Done("nnsk_conf_ans"));
  return m;
}

std::string_view KsErrorCodeName(KsErrorCode code) {
  switch (code) {
    case KsErrorCode::kPairNotAllowed:
      return "pair not allowed";
    case KsErrorCode::kPeerUnknown:
      return "peer unknown or not registered";
    case KsErrorCode::kBusy:
      return "key server busy";
    case KsErrorCode::kInternal:
      return "key server internal error";
    case KsErrorCode::kStaleRequest:
      return "stale request id";
  }
  return "unknown";
}

void KsError::EncodeTo(Bytes* out) const {
  ByteWriter w(out);
  w.U8(static_cast<uint8_t>(refused_type));
  w.U8(static_cast<uint8_t>(code));
}
StatusOr<KsError> KsError::Parse(std::span<const uint8_t> in) {
  KsError m;
  BodyReader r(in);
  uint8_t type = 0, code = 0;
  r.U8(&type);
  r.U8(&code);
  KGR_RETURN_IF_ERROR(r.Done("ks_error"));
  if (!IsKnownFrameType(type)) return Malformed("ks_error: unknown type");
  if (code < 1 || code > 5) return Malformed("ks_error: unknown code");
  m.refused_type = static_cast<FrameType>(type);
  m.code = static_cast<KsErrorCode>(code);
  return m;
}

void PairRevoked::EncodeTo(Bytes* out) const {
  ByteWriter w(out);
  w.U32(peer);
  w.U8(static_cast<uint8_t>(reason));
}
StatusOr<PairRevoked> PairRevoked::Parse(std::span<const uint8_t> in) {
  PairRevoked m;
  BodyReader r(in);
  uint8_t reason = 0;
  r.U32(&m.peer);
  r.U8(&reason);
  KGR_RETURN_IF_ERROR(r.Done("pair_revoked"));
  if (reason < 1 || reason > 2)
    return Malformed("pair_revoked: unknown reason");
  m.reason = static_cast<RevokeReason>(reason);
  return m;
}

void NkskRotReq::EncodeTo(Bytes* out) const {
  ByteWriter(out).Raw(node_public);
}
StatusOr<NkskRotReq> NkskRotReq::Parse(std::span<const uint8_t> in) {
  NkskRotReq m;
  BodyReader r(in);
  SecretBytes pub;
  r.Secret(kX25519Size, &pub);
  KGR_RETURN_IF_ERROR(r.Done("nksk_rot_req"));
  m.node_public.assign(pub.span().begin(), pub.span().end());
  return m;
}

void NkskRotAns::EncodeTo(Bytes* out) const {
  ByteWriter w(out);
  w.Raw(ks_public);
  w.U32(version);
}
StatusOr<NkskRotAns> NkskRotAns::Parse(std::span<const uint8_t> in) {
  NkskRotAns m;
  BodyReader r(in);
  SecretBytes pub;
  r.Secret(kX25519Size, &pub);
  r.U32(&m.version);
  KGR_RETURN_IF_ERROR(r.Done("nksk_rot_ans"));
  m.ks_public.assign(pub.span().begin(), pub.span().end());
  return m;
}

void NkskRotSig::EncodeTo(Bytes*) const {}
StatusOr<NkskRotSig> NkskRotSig::Parse(std::span<const uint8_t> in) {
  BodyReader r(in);
  KGR_RETURN_IF_ERROR(r.Done("nksk_rot_sig"));
  return NkskRotSig{};
}

StatusOr<SymmetricKeys> RotationKeys(const SecretBytes& shared, uint32_t n_id,
                                     uint32_t version,
                                     std::span<const uint8_t> node_public,
                                     std::span<const uint8_t> ks_public) {
  if (node_public.size() != kX25519Size || ks_public.size() != kX25519Size) {
    return InvalidArgumentError("rotation public keys are 32 bytes");
  }
  Bytes info;
  ByteWriter w(&info);
  w.U32(n_id);
  w.U32(version);
  w.Raw(node_public);
  w.Raw(ks_public);
  return DeriveKeys(shared.span(), AsBytes("kgr/v1 nksk rotation"), info);
}

void AcRevokeReq::EncodeTo(Bytes* out) const { ByteWriter(out).U32(n_id); }
StatusOr<AcRevokeReq> AcRevokeReq::Parse(std::span<const uint8_t> in) {
  AcRevokeReq m;
  BodyReader r(in);
  r.U32(&m.n_id);
  KGR_RETURN_IF_ERROR(r.Done("ac_revoke_req"));
  return m;
}

void AcRevokeAns::EncodeTo(Bytes* out) const {
  ByteWriter w(out);
  w.U8(status);
  w.U16(peers_notified);
}
StatusOr<AcRevokeAns> AcRevokeAns::Parse(std::span<const uint8_t> in) {
  AcRevokeAns m;
  BodyReader r(in);
  r.U8(&m.status);
  r.U16(&m.peers_notified);
  KGR_RETURN_IF_ERROR(r.Done("ac_revoke_ans"));
  return m;
}

void NodeDataReq::EncodeTo(Bytes* out) const {
  ByteWriter w(out);
  w.U32(n_id2);
  w.Raw(data.span());
}
StatusOr<NodeDataReq> NodeDataReq::Parse(std::span<const uint8_t> in) {
  NodeDataReq m;
  BodyReader r(in);
  r.U32(&m.n_id2);
  r.Rest(kMaxDataSize, &m.data);
  KGR_RETURN_IF_ERROR(r.Done("node_data_req"));
  return m;
}

void NodeDataAns::EncodeTo(Bytes* out) const {
  ByteWriter w(out);
  w.U32(n_id2);
  w.Raw(data.span());
}
StatusOr<NodeDataAns> NodeDataAns::Parse(std::span<const uint8_t> in) {
  NodeDataAns m;
  BodyReader r(in);
  r.U32(&m.n_id2);
  r.Rest(kMaxDataSize, &m.data);
  KGR_RETURN_IF_ERROR(r.Done("node_data_ans"));
  return m;
}

void AcAuthorizeReq::EncodeTo(Bytes* out) const {
  ByteWriter w(out);
  WriteIds(w, peers);
}
StatusOr<AcAuthorizeReq> AcAuthorizeReq::Parse(std::span<const uint8_t> in) {
  AcAuthorizeReq m;
  BodyReader r(in);
  r.Ids(&m.peers);
  KGR_RETURN_IF_ERROR(r.Done("ac_authorize_req"));
  return m;
}

void AcAuthorizeAns::EncodeTo(Bytes* out) const {
  ByteWriter w(out);
  w.U8(status);
  if (status != 0) return;
  w.U32(n_id);
  w.U16(entry_no);
  w.Raw(ntag.span());
  w.Raw(ks_topic1);
  w.U32(ks_n_id);
}
StatusOr<AcAuthorizeAns> AcAuthorizeAns::Parse(std::span<const uint8_t> in) {
  AcAuthorizeAns m;
  BodyReader r(in);
  r.U8(&m.status);
  if (m.status == 0) {
    r.U32(&m.n_id);
    r.U16(&m.entry_no);
    r.Secret(kNtagSize, &m.ntag);
    r.Topic(&m.ks_topic1);
    r.U32(&m.ks_n_id);
  }
  KGR_RETURN_IF_ERROR(r.Done("ac_authorize_ans"));
  return m;
}

void AcPeersReq::EncodeTo(Bytes* out) const {
  ByteWriter w(out);
  w.U32(n_id);
  w.U8(allow);
  WriteIds(w, peers);
}
StatusOr<AcPeersReq> AcPeersReq::Parse(std::span<const uint8_t> in) {
  AcPeersReq m;
  BodyReader r(in);
  r.U32(&m.n_id);
  r.U8(&m.allow);
  r.Ids(&m.peers);
  KGR_RETURN_IF_ERROR(r.Done("ac_peers_req"));
  if (m.allow > 1) return Malformed("ac_peers_req: allow must be 0 or 1");
  return m;
}

void AcPeersAns::EncodeTo(Bytes* out) const { ByteWriter(out).U8(status); }
StatusOr<AcPeersAns> AcPeersAns::Parse(std::span<const uint8_t> in) {
  AcPeersAns m;
  BodyReader r(in);
  r.U8(&m.status);
  KGR_RETURN_IF_ERROR(r.Done("ac_peers_ans"));
  return m;
}

void AcListReq::EncodeTo(Bytes* out) const { ByteWriter(out).U32(after); }
StatusOr<AcListReq> AcListReq::Parse(std::span<const uint8_t> in) {
  AcListReq m;
  BodyReader r(in);
  r.U32(&m.after);
  KGR_RETURN_IF_ERROR(r.Done("ac_list_req"));
  return m;
}

void AcListAns::EncodeTo(Bytes* out) const {
  ByteWriter w(out);
  w.U8(status);
  w.U8(more);
  w.U32(static_cast<uint32_t>(nodes.size()));
  for (const Entry& e : nodes) {
    w.U32(e.n_id);
    w.U8(e.state);
    w.U16(e.entry_no);
    WriteIds(w, e.peers);
  }
}
StatusOr<AcListAns> AcListAns::Parse(std::span<const uint8_t> in) {
  AcListAns m;
  BodyReader r(in);
  uint32_t n = 0;
  r.U8(&m.status);
  r.U8(&m.more);
  if (m.more > 1) r.Fail();
  r.U32(&n);
  // Each entry takes at least 9 bytes: bound the count by the input before
  // allocating anything.
  if (static_cast<uint64_t>(n) * 9 > r.remaining()) {
    r.Fail();
  } else {
    m.nodes.resize(n);
    for (Entry& e : m.nodes) {
      r.U32(&e.n_id);
      r.U8(&e.state);
      r.U16(&e.entry_no);
      r.Ids(&e.peers);
    }
  }
  KGR_RETURN_IF_ERROR(r.Done("ac_list_ans"));
  return m;
}

// ---- counter file ----

StatusOr<uint64_t> LoadCounterFloor(FileSystem& fs, const std::string& path) {
  auto raw = fs.ReadFile(path);
  if (!raw.ok()) {
    if (raw.status().code() == StatusCode::kNotFound) return uint64_t{0};
    return raw.status();
  }
  uint64_t v = 0;
  size_t digits = 0;
  for (uint8_t c : *raw) {
    if (c == '\n') break;
    if (c < '0' || c > '9' || ++digits > 19) {
      return DataLossError(path + ": not a counter");
    }
    v = v * 10 + (c - '0');
  }
  if (digits == 0) return DataLossError(path + ": empty counter file");
  return v + kCounterRestartMargin;
}

Status SaveCounter(FileSystem& fs, const std::string& path, uint64_t counter) {
  std::string text = std::to_string(counter) + "\n";
  return fs.WriteFileAtomic(path, AsBytes(text), 0600);
}

// ---- replay window ----

bool ReplayWindow::IsFresh(uint64_t counter) const {
  if (counter > highest_) return true;
  uint64_t age = highest_ - counter;
  if (age >= kWidth) return false;
  return (seen_ & (uint64_t{1} << age)) == 0;
}

void ReplayWindow::Accept(uint64_t counter) {
  if (counter > highest_) {
    uint64_t shift = counter - highest_;
    seen_ = shift >= kWidth ? 0 : seen_ << shift;
    highest_ = counter;
    seen_ |= 1;
  } else {
    seen_ |= uint64_t{1} << (highest_ - counter);
  }
}

}  // namespace kgr
