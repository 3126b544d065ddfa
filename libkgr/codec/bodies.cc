// The body codecs: the plaintext of each frame type (docs/protocol.md
// section 2, "Bodies").
#include <algorithm>

#include "kgr/frame.h"

namespace kgr {
namespace {

Status Malformed(std::string_view what) {
  return InvalidArgumentError("malformed frame: " + std::string(what));
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
    std::span<const uint8_t> enc, mac;
    ok_ = ok_ && r_.View(kKeySize, &enc) && r_.View(kKeySize, &mac);
    if (ok_) *k = SymmetricKeys(SecretBytes(enc), SecretBytes(mac));
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
  w.Raw(k.RawEncKeyBytes().span());
  w.Raw(k.RawMacKeyBytes().span());
}

}  // namespace

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
    case KsErrorCode::kCertificateRefused:
      return "certificate request refused";
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
  if (code < 1 || code > 6) return Malformed("ks_error: unknown code");
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

void CertRenewReq::EncodeTo(Bytes* out) const { ByteWriter(out).Raw(csr_der); }
StatusOr<CertRenewReq> CertRenewReq::Parse(std::span<const uint8_t> in) {
  BodyReader r(in);
  SecretBytes csr;
  r.Rest(kMaxCsrSize, &csr);
  if (csr.empty()) r.Fail();
  KGR_RETURN_IF_ERROR(r.Done("cert_renew_req"));
  CertRenewReq m;
  m.csr_der.assign(csr.span().begin(), csr.span().end());
  return m;
}

void CertRenewAns::EncodeTo(Bytes* out) const {
  ByteWriter(out).Raw(AsBytes(chain_pem));
}
StatusOr<CertRenewAns> CertRenewAns::Parse(std::span<const uint8_t> in) {
  BodyReader r(in);
  SecretBytes chain;
  r.Rest(kMaxCertChainSize, &chain);
  if (chain.empty()) r.Fail();
  KGR_RETURN_IF_ERROR(r.Done("cert_renew_ans"));
  CertRenewAns m;
  m.chain_pem.assign(chain.span().begin(), chain.span().end());
  return m;
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

}  // namespace kgr
