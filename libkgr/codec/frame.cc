#include "kgr/frame.h"

#include <openssl/crypto.h>

#include <algorithm>

#include "kgr/group_frames.h"

namespace kgr {
namespace {

// Where the header carries the IV: after version, type, flags, sender,
// key_version, counter and request_id.
constexpr size_t kFrameIvOffset = 1 + 1 + 1 + 4 + 4 + 8 + 8;
static_assert(kFrameIvOffset + kIvSize + 4 == kFrameHeaderSize);

Status MalformedFrame(std::string_view what) {
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
  if (frame.size() < kFrameHeaderSize + tail) return MalformedFrame("too short");
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
  if ((h.flags & ~kKnownFlags) != 0) return MalformedFrame("unknown flags");
  if (h.body_len > kMaxBodySize) return MalformedFrame("body too large");
  if (frame.size() != kFrameHeaderSize + h.body_len + tail) {
    return MalformedFrame("length does not match header");
  }
  std::copy(iv.begin(), iv.end(), h.iv.begin());
  return h;
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
    case FrameType::kCertRenewReq:
      return "cert_renew_req";
    case FrameType::kCertRenewAns:
      return "cert_renew_ans";
    case FrameType::kNodeDataReq:
      return "node_data_req";
    case FrameType::kNodeDataAns:
      return "node_data_ans";
    case FrameType::kGroupRekey:
      return "group_rekey";
    case FrameType::kGroupData:
      return "group_data";
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
    default:
      return GroupFrameTypeName(type);  // group_bodies.cc
  }
  return "unknown";
}

bool IsKnownFrameType(uint8_t t) {
  return (t >= 0x01 && t <= 0x0F) || t == 0x10 || t == 0x11 || t == 0x12 ||
         t == 0x14 ||
         (t >= 0x20 && t <= 0x27) || IsGroupAdminFrameType(t);
}

StatusOr<FrameHeader> PeekFrameHeader(std::span<const uint8_t> frame) {
  KGR_ASSIGN_OR_RETURN(FrameHeader h, ParseHeader(frame, kTagSize));
  if (IsAcFrameType(h.type)) return MalformedFrame("AC frame outside CMS");
  if (h.type == FrameType::kGroupRekey) return MalformedFrame("not a sealed frame");
  return h;
}

StatusOr<Bytes> SealFrame(FrameHeader header, std::span<const uint8_t> body,
                          const SymmetricKeys& keys) {
  KGR_RETURN_IF_ERROR(CheckHeaderForSeal(header, body.size()));
  if (IsAcFrameType(header.type)) {
    return InvalidArgumentError("AC frames are sent as clear frames in CMS");
  }
  if (header.type == FrameType::kGroupRekey) {
    return InvalidArgumentError("group_rekey frames are signed, not sealed");
  }
  header.iv = Iv{};  // EtmSeal fills it in
  header.body_len = static_cast<uint32_t>(body.size());
  Bytes out;
  out.reserve(kFrameOverhead + body.size());
  WriteHeader(header, &out);
  KGR_RETURN_IF_ERROR(EtmSeal(keys, kFrameIvOffset, body, &out));
  return out;
}

StatusOr<SecretBytes> OpenFrame(std::span<const uint8_t> frame,
                                const SymmetricKeys& keys,
                                FrameHeader* header) {
  KGR_ASSIGN_OR_RETURN(*header, PeekFrameHeader(frame));
  return EtmOpen(keys, frame.first(frame.size() - kTagSize), kFrameIvOffset,
                 kFrameHeaderSize, frame.last(kTagSize));
}

StatusOr<Bytes> EncodeClearFrame(FrameHeader header,
                                 std::span<const uint8_t> body) {
  KGR_RETURN_IF_ERROR(CheckHeaderForSeal(header, body.size()));
  if (!IsAcFrameType(header.type) && header.type != FrameType::kGroupRekey) {
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
  if (!IsAcFrameType(header->type) && header->type != FrameType::kGroupRekey) {
    return MalformedFrame("not an AC frame");
  }
  if (header->iv != Iv{}) return MalformedFrame("clear frame with an IV");
  return frame.subspan(kFrameHeaderSize);
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
