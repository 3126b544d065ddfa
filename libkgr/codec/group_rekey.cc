// The group_rekey frame (0x12), group_path, and the key derivations and
// wraps of the group key tree (docs/protocol.md section 12).
#include "kgr/group_rekey.h"

#include <algorithm>
#include <string>
#include <tuple>

namespace kgr {
namespace {

constexpr char kSignatureLabel[] = "kgr/v1 group_rekey";
constexpr char kWrapLabel[] = "kgr/v1 group wrap";
constexpr uint8_t kPathVersionLimit = kMaxGroupTreeDepth;

Status MalformedRekey(std::string_view what) {
  return InvalidArgumentError("malformed group_rekey: " + std::string(what));
}

// Number of nodes at `level` of a tree of `depth`: 4^(depth - level).
uint64_t NodesAtLevel(uint8_t depth, uint8_t level) {
  return uint64_t{1} << (2 * (depth - level));
}

auto EntryOrder(const RekeyEntry& e) {
  return std::make_tuple(e.level, e.position, e.child_slot);
}

Status CheckEntry(const RekeyEntry& e, uint8_t depth) {
  if (e.level < 1 || e.level > depth) return MalformedRekey("entry level");
  if (e.child_slot >= kGroupTreeArity) return MalformedRekey("entry child slot");
  if (e.position >= NodesAtLevel(depth, e.level)) {
    return MalformedRekey("entry position outside the tree");
  }
  return OkStatus();
}

Bytes WrapAad(const WrapPlace& p) {
  Bytes aad;
  aad.reserve(sizeof(kWrapLabel) - 1 + 22 + kIvSize);
  ByteWriter w(&aad);
  w.Str(kWrapLabel);
  w.U32(p.group_id);
  w.U32(p.epoch);
  w.U8(p.level);
  w.U32(p.position);
  w.U32(p.version);
  w.U8(p.child_slot);
  w.U32(p.child_version);
  return aad;
}

}  // namespace

void GroupRekeyPart::EncodeTo(Bytes* out) const {
  out->reserve(out->size() + kRekeyBodyFixedSize +
               entries.size() * kRekeyEntrySize);
  ByteWriter w(out);
  w.U32(group_id);
  w.U32(epoch);
  w.U8(depth);
  w.U16(part);
  w.U16(parts);
  w.U16(static_cast<uint16_t>(entries.size()));
  for (const RekeyEntry& e : entries) {
    w.U8(e.level);
    w.U32(e.position);
    w.U32(e.version);
    w.U8(e.child_slot);
    w.Raw(e.wrapped);
  }
}

StatusOr<GroupRekeyPart> GroupRekeyPart::Parse(std::span<const uint8_t> in) {
  ByteReader r(in);
  GroupRekeyPart p;
  uint16_t count = 0;
  if (!r.U32(&p.group_id) || !r.U32(&p.epoch) || !r.U8(&p.depth) ||
      !r.U16(&p.part) || !r.U16(&p.parts) || !r.U16(&count)) {
    return MalformedRekey("truncated body");
  }
  if (p.depth < 1 || p.depth > kMaxGroupTreeDepth) return MalformedRekey("depth");
  if (p.parts == 0 || p.parts > kMaxRekeyParts || p.part >= p.parts) {
    return MalformedRekey("part number");
  }
  if (count > kMaxRekeyEntriesPerPart) return MalformedRekey("too many entries");
  if (r.remaining() != size_t{count} * kRekeyEntrySize) {
    return MalformedRekey("length does not match the entry count");
  }
  p.entries.resize(count);
  for (size_t i = 0; i < count; ++i) {
    RekeyEntry& e = p.entries[i];
    std::span<const uint8_t> wrapped;
    r.U8(&e.level);
    r.U32(&e.position);
    r.U32(&e.version);
    r.U8(&e.child_slot);
    r.View(kWrappedSecretSize, &wrapped);
    std::copy(wrapped.begin(), wrapped.end(), e.wrapped.begin());
    KGR_RETURN_IF_ERROR(CheckEntry(e, p.depth));
    if (i > 0 && !(EntryOrder(p.entries[i - 1]) < EntryOrder(e))) {
      return MalformedRekey("entries out of order");
    }
  }
  return p;
}

StatusOr<std::vector<Bytes>> SealGroupRekey(
    const GroupRekey& rekey, uint32_t ks_n_id, const SecretBytes& signing_key,
    const std::function<uint64_t()>& counter) {
  size_t n = rekey.entries.size();
  size_t parts = std::max<size_t>(
      1, (n + kMaxRekeyEntriesPerPart - 1) / kMaxRekeyEntriesPerPart);
  if (parts > kMaxRekeyParts) {
    return ResourceExhaustedError("rekey too large: " + std::to_string(n) +
                                  " entries");
  }
  std::vector<Bytes> frames;
  frames.reserve(parts);
  for (size_t i = 0; i < parts; ++i) {
    GroupRekeyPart part;
    part.group_id = rekey.group_id;
    part.epoch = rekey.epoch;
    part.depth = rekey.depth;
    part.part = static_cast<uint16_t>(i);
    part.parts = static_cast<uint16_t>(parts);
    size_t from = i * kMaxRekeyEntriesPerPart;
    size_t to = std::min(n, from + kMaxRekeyEntriesPerPart);
    part.entries.assign(rekey.entries.begin() + from,
                        rekey.entries.begin() + to);
    Bytes body;
    part.EncodeTo(&body);
    FrameHeader h;
    h.type = FrameType::kGroupRekey;
    h.sender = ks_n_id;
    h.key_version = rekey.epoch;
    h.counter = counter();
    KGR_ASSIGN_OR_RETURN(Bytes frame, EncodeClearFrame(h, body));
    KGR_ASSIGN_OR_RETURN(
        Bytes sig, Ed25519Sign(signing_key, {AsBytes(kSignatureLabel), frame}));
    frame.insert(frame.end(), sig.begin(), sig.end());
    frames.push_back(std::move(frame));
  }
  return frames;
}

StatusOr<GroupRekeyPart> OpenGroupRekey(std::span<const uint8_t> frame,
                                        std::span<const uint8_t> ks_public,
                                        FrameHeader* header) {
  if (frame.size() < kFrameHeaderSize + kEd25519SignatureSize) {
    return MalformedRekey("too short");
  }
  auto signed_part = frame.first(frame.size() - kEd25519SignatureSize);
  KGR_ASSIGN_OR_RETURN(auto body, DecodeClearFrame(signed_part, header));
  if (header->type != FrameType::kGroupRekey) return MalformedRekey("frame type");
  if (header->flags != 0) return MalformedRekey("flags");
  KGR_RETURN_IF_ERROR(Ed25519Verify(ks_public,
                                    {AsBytes(kSignatureLabel), signed_part},
                                    frame.last(kEd25519SignatureSize)));
  KGR_ASSIGN_OR_RETURN(GroupRekeyPart part, GroupRekeyPart::Parse(body));
  if (part.epoch != header->key_version) {
    return MalformedRekey("header key version is not the epoch");
  }
  return part;
}

GroupPath GroupPath::Clone() const {
  GroupPath c;
  c.group_id = group_id;
  c.epoch = epoch;
  c.depth = depth;
  c.leaf_position = leaf_position;
  c.keys.reserve(keys.size());
  for (const auto& k : keys) c.keys.push_back({k.version, k.secret.Clone()});
  return c;
}

void GroupPath::EncodeTo(Bytes* out) const {
  ByteWriter w(out);
  w.U32(group_id);
  w.U32(epoch);
  w.U8(depth);
  w.U32(leaf_position);
  for (const auto& k : keys) {
    w.U32(k.version);
    w.Raw(k.secret.span());
  }
}

StatusOr<GroupPath> GroupPath::Parse(std::span<const uint8_t> in) {
  ByteReader r(in);
  GroupPath p;
  if (!r.U32(&p.group_id) || !r.U32(&p.epoch) || !r.U8(&p.depth) ||
      !r.U32(&p.leaf_position)) {
    return InvalidArgumentError("malformed group_path: truncated");
  }
  if (p.depth < 1 || p.depth > kPathVersionLimit) {
    return InvalidArgumentError("malformed group_path: depth");
  }
  if (p.leaf_position >= NodesAtLevel(p.depth, 0)) {
    return InvalidArgumentError("malformed group_path: leaf position");
  }
  if (r.remaining() != (size_t{p.depth} + 1) * (4 + kGroupSecretSize)) {
    return InvalidArgumentError("malformed group_path: length");
  }
  p.keys.resize(p.depth + 1);
  for (auto& k : p.keys) {
    r.U32(&k.version);
    r.Secret(kGroupSecretSize, &k.secret);
  }
  return p;
}

StatusOr<SymmetricKeys> GroupNodeKek(const SecretBytes& secret,
                                     uint32_t group_id, uint8_t level,
                                     uint32_t position, uint32_t version) {
  Bytes info;
  ByteWriter w(&info);
  w.U32(group_id);
  w.U8(level);
  w.U32(position);
  w.U32(version);
  return DeriveKeys(secret.span(), AsBytes("kgr/v1 group kek"), info);
}

StatusOr<SymmetricKeys> GroupDataKeys(const SecretBytes& root_secret,
                                      uint32_t group_id, uint32_t epoch) {
  Bytes info;
  ByteWriter w(&info);
  w.U32(group_id);
  w.U32(epoch);
  return DeriveKeys(root_secret.span(), AsBytes("kgr/v1 group data"), info);
}

StatusOr<std::array<uint8_t, kWrappedSecretSize>> WrapGroupSecret(
    const SymmetricKeys& child_kek, const WrapPlace& place,
    const SecretBytes& secret) {
  if (secret.size() != kGroupSecretSize) {
    return InvalidArgumentError("a group node secret is 32 bytes");
  }
  Bytes out = WrapAad(place);
  size_t aad_size = out.size();
  out.resize(aad_size + kIvSize);
  KGR_RETURN_IF_ERROR(EtmSeal(child_kek, aad_size, secret.span(), &out));
  std::array<uint8_t, kWrappedSecretSize> wrapped;
  if (out.size() != aad_size + kWrappedSecretSize) {
    return InternalError("wrap size");
  }
  std::copy(out.begin() + aad_size, out.end(), wrapped.begin());
  return wrapped;
}

StatusOr<SecretBytes> UnwrapGroupSecret(
    const SymmetricKeys& child_kek, const WrapPlace& place,
    std::span<const uint8_t, kWrappedSecretSize> wrapped) {
  Bytes authenticated = WrapAad(place);
  size_t aad_size = authenticated.size();
  authenticated.insert(authenticated.end(), wrapped.begin(),
                       wrapped.end() - kTagSize);
  return EtmOpen(child_kek, authenticated, aad_size, aad_size + kIvSize,
                 wrapped.last(kTagSize));
}

}  // namespace kgr
