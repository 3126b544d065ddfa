// Group data messages (0x14): body codec, key derivation, signing and
// opening (format: kgr/group_frame.h, docs/protocol.md section 13).
#include <string_view>

#include "kgr/group_frame.h"

namespace kgr {
namespace {

constexpr std::string_view kSignLabel = "kgr/v1 group_data";

Status MalformedGroupData(std::string_view why) {
  return InvalidArgumentError("group_data: " + std::string(why));
}

}  // namespace

bool IsKnownGroupMode(uint8_t mode) { return mode <= 1; }

std::string_view GroupModeName(GroupMode mode) {
  return mode == GroupMode::kSenderAuth ? "sender_auth" : "group_key";
}

void GroupData::EncodeTo(Bytes* out) const {
  ByteWriter w(out);
  w.U32(group_id);
  w.U8(static_cast<uint8_t>(mode));
  if (mode == GroupMode::kSenderAuth) w.Raw(signature);
  w.Raw(data.span());
}

StatusOr<GroupData> GroupData::Parse(std::span<const uint8_t> in) {
  ByteReader r(in);
  GroupData g;
  uint8_t mode = 0;
  if (!r.U32(&g.group_id) || !r.U8(&mode))
    return MalformedGroupData("truncated");
  if (!IsKnownGroupMode(mode)) return MalformedGroupData("unknown mode");
  g.mode = static_cast<GroupMode>(mode);
  if (g.group_id == 0) return MalformedGroupData("group id 0");
  if (g.mode == GroupMode::kSenderAuth &&
      !r.Raw(kEd25519SignatureSize, &g.signature)) {
    return MalformedGroupData("truncated signature");
  }
  if (r.remaining() > kMaxGroupDataSize)
    return MalformedGroupData("data too large");
  if (!r.Secret(r.remaining(), &g.data)) return MalformedGroupData("truncated");
  return g;
}

Bytes GroupSignedBytes(const FrameHeader& h, uint32_t group_id, GroupMode mode,
                       std::span<const uint8_t> data) {
  Bytes out;
  out.reserve(kSignLabel.size() + 32 + data.size());
  ByteWriter w(&out);
  w.Str(kSignLabel);
  w.U8(kFrameVersion);
  w.U8(static_cast<uint8_t>(h.type));
  w.U8(h.flags);
  w.U32(h.sender);
  w.U32(h.key_version);
  w.U64(h.counter);
  w.U64(h.request_id);
  w.U32(group_id);
  w.U8(static_cast<uint8_t>(mode));
  w.Raw(data);
  return out;
}

StatusOr<Bytes> SealGroupData(const FrameHeader& header, uint32_t group_id,
                              GroupMode mode, std::span<const uint8_t> data,
                              const SymmetricKeys& keys,
                              const SecretBytes* signing_key) {
  if (header.type != FrameType::kGroupData || header.flags != 0) {
    return InvalidArgumentError("group_data: wrong header type or flags");
  }
  if (group_id == 0) return InvalidArgumentError("group_data: group id 0");
  if (data.size() > kMaxGroupDataSize) {
    return InvalidArgumentError("group_data: data over 61440 bytes");
  }
  GroupData body;
  body.group_id = group_id;
  body.mode = mode;
  body.data = SecretBytes(data);
  if (mode == GroupMode::kSenderAuth) {
    if (signing_key == nullptr) {
      return InvalidArgumentError("group_data: sender_auth needs a key");
    }
    const Bytes to_sign = GroupSignedBytes(header, group_id, mode, data);
    KGR_ASSIGN_OR_RETURN(body.signature, Ed25519Sign(*signing_key, {to_sign}));
  }
  Bytes plain;
  body.EncodeTo(&plain);
  StatusOr<Bytes> frame = SealFrame(header, plain, keys);
  WipeVector(plain);
  return frame;
}

StatusOr<GroupData> OpenGroupData(std::span<const uint8_t> frame,
                                  const SymmetricKeys& keys, uint32_t group_id,
                                  GroupMode mode,
                                  std::span<const uint8_t> sender_public,
                                  FrameHeader* header) {
  KGR_ASSIGN_OR_RETURN(SecretBytes plain, OpenFrame(frame, keys, header));
  if (header->type != FrameType::kGroupData || header->flags != 0) {
    return MalformedGroupData("not a group message");
  }
  KGR_ASSIGN_OR_RETURN(GroupData body, GroupData::Parse(plain.span()));
  if (body.group_id != group_id)
    return MalformedGroupData("another group's message");
  if (body.mode != mode) return MalformedGroupData("the group's mode differs");
  if (mode == GroupMode::kSenderAuth) {
    const Bytes to_sign =
        GroupSignedBytes(*header, group_id, mode, body.data.span());
    KGR_RETURN_IF_ERROR(
        Ed25519Verify(sender_public, {to_sign}, body.signature));
  }
  return body;
}

}  // namespace kgr
