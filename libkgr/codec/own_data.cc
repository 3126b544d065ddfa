#include "kgr/own_data.h"

#include "kgr/bytes.h"

namespace kgr {
namespace {

constexpr uint8_t kIdentityVersion = 1;
constexpr uint8_t kKsKeysVersion = 1;
constexpr size_t kMaxAddress = 128;

Status Bad(std::string_view what) {
  return DataLossError("NV blob " + std::string(what) + " is malformed");
}

}  // namespace

Bytes EncodeIdentity(const IdentityBlob& b) {
  Bytes out;
  ByteWriter w(&out);
  w.U8(kIdentityVersion);
  w.U8(static_cast<uint8_t>(b.role));
  w.U32(b.n_id);
  w.U8(static_cast<uint8_t>(b.broker_address.size()));
  w.Str(b.broker_address);
  w.U8(static_cast<uint8_t>(b.topic_prefix.size()));
  w.Str(b.topic_prefix);
  w.Raw(b.own_topic);
  w.U32(b.ks_n_id);
  return out;
}

StatusOr<IdentityBlob> DecodeIdentity(std::span<const uint8_t> in) {
  ByteReader r(in);
  IdentityBlob b;
  uint8_t version = 0, role = 0, alen = 0, plen = 0;
  std::span<const uint8_t> addr, prefix, topic;
  if (!r.U8(&version) || version != kIdentityVersion || !r.U8(&role) ||
      (role != 1 && role != 2) || !r.U32(&b.n_id) || !r.U8(&alen) ||
      alen > kMaxAddress || !r.View(alen, &addr) || !r.U8(&plen) ||
      !r.View(plen, &prefix) || !r.View(kTopicIdSize, &topic) ||
      !r.U32(&b.ks_n_id) || !r.done()) {
    return Bad("identity");
  }
  b.role = static_cast<Role>(role);
  b.broker_address.assign(addr.begin(), addr.end());
  b.topic_prefix.assign(prefix.begin(), prefix.end());
  std::copy(topic.begin(), topic.end(), b.own_topic.begin());
  KGR_RETURN_IF_ERROR(ValidateTopicPrefix(b.topic_prefix));
  return b;
}

SecretBytes EncodeKsKeys(const KsKeysBlob& b) {
  Bytes tail;
  ByteWriter w(&tail);
  w.U32(b.version);
  w.Raw(b.ks_topic1);
  w.U32(b.ks_n_id);
  SecretBytes out(std::span<const uint8_t>(&kKsKeysVersion, 1));
  out.Append(b.nksk.RawEncKeyBytes().span());
  out.Append(b.nksk.RawMacKeyBytes().span());
  out.Append(tail);
  return out;
}

StatusOr<KsKeysBlob> DecodeKsKeys(std::span<const uint8_t> in) {
  ByteReader r(in);
  KsKeysBlob b;
  uint8_t version = 0;
  std::span<const uint8_t> enc, mac, topic;
  if (!r.U8(&version) || version != kKsKeysVersion || !r.View(kKeySize, &enc) ||
      !r.View(kKeySize, &mac) || !r.U32(&b.version) ||
      !r.View(kTopicIdSize, &topic) || !r.U32(&b.ks_n_id) || !r.done()) {
    return Bad("ks keys");
  }
  b.nksk = SymmetricKeys(SecretBytes(enc), SecretBytes(mac));
  std::copy(topic.begin(), topic.end(), b.ks_topic1.begin());
  return b;
}

StatusOr<OwnData> LoadOwnData(Tpm& tpm) {
  OwnData d;
  auto id = tpm.NvRead(NvSlot::kIdentity);
  if (!id.ok()) {
    if (id.status().code() == StatusCode::kNotFound) {
      return NotFoundError("not initialized (no identity in the TPM)");
    }
    return id.status();
  }
  KGR_ASSIGN_OR_RETURN(d.identity, DecodeIdentity(id->span()));
  KGR_ASSIGN_OR_RETURN(SecretBytes nk, tpm.NvRead(NvSlot::kNodeKeys));
  if (nk.size() != 2 * kKeySize) return Bad("node keys");
  KGR_ASSIGN_OR_RETURN(d.nk,
                       SymmetricKeys::FromBytes(nk.span().first(kKeySize),
                                                nk.span().subspan(kKeySize)));
  // Used for every record of the stores: set up once.
  KGR_RETURN_IF_ERROR(d.nk.Prepare());
  if (d.identity.role == Role::kNode) {
    auto ntag = tpm.NvRead(NvSlot::kNtag);
    if (ntag.ok()) {
      d.ntag = std::move(*ntag);
    } else if (ntag.status().code() != StatusCode::kNotFound) {
      return ntag.status();
    }
    auto ks = tpm.NvRead(NvSlot::kKsKeys);
    if (ks.ok()) {
      KGR_ASSIGN_OR_RETURN(KsKeysBlob blob, DecodeKsKeys(ks->span()));
      KGR_RETURN_IF_ERROR(blob.nksk.Prepare());  // used for every frame
      d.ks = std::move(blob);
    } else if (ks.status().code() != StatusCode::kNotFound) {
      return ks.status();
    }
  }
  return d;
}

Status SaveInitialOwnData(Tpm& tpm, const OwnData& data) {
  if (!data.nk.valid()) return InvalidArgumentError("NK pair missing");
  SecretBytes nk = data.nk.RawEncKeyBytes().Clone();
  nk.Append(data.nk.RawMacKeyBytes().span());
  KGR_RETURN_IF_ERROR(tpm.NvWrite(NvSlot::kNodeKeys, nk.span()));
  if (!data.ntag.empty()) {
    KGR_RETURN_IF_ERROR(tpm.NvWrite(NvSlot::kNtag, data.ntag.span()));
  }
  // Identity last: its presence marks a complete init.
  return tpm.NvWrite(NvSlot::kIdentity, EncodeIdentity(data.identity));
}

StatusOr<OwnData> LoadOrCreateOwnData(
    Tpm& tpm, OwnData fresh,
    const std::function<Status(const IdentityBlob&)>& accept, bool* created) {
  *created = false;
  const bool ks = fresh.identity.role == Role::kKeyServer;
  KGR_RETURN_IF_ERROR(tpm.EnsureTrustStructure(/*with_kedk=*/ks));
  auto existing = LoadOwnData(tpm);
  if (existing.ok()) {
    KGR_RETURN_IF_ERROR(accept(existing->identity));
    return existing;
  }
  if (existing.status().code() != StatusCode::kNotFound) {
    return existing.status();
  }
  KGR_RETURN_IF_ERROR(MixTpmEntropy(tpm));
  if (fresh.identity.n_id == 0) {
    KGR_ASSIGN_OR_RETURN(fresh.identity.n_id, RandomU32());
  }
  KGR_ASSIGN_OR_RETURN(fresh.identity.own_topic, RandomTopicId());
  KGR_ASSIGN_OR_RETURN(fresh.nk, SymmetricKeys::Generate());
  KGR_RETURN_IF_ERROR(SaveInitialOwnData(tpm, fresh));
  *created = true;
  return fresh;
}

Status MixTpmEntropy(Tpm& tpm, size_t n) {
  KGR_ASSIGN_OR_RETURN(SecretBytes r, tpm.GetRandom(n));
  MixEntropy(r.span());
  return OkStatus();
}

Status SaveKsKeys(Tpm& tpm, const KsKeysBlob& blob) {
  SecretBytes encoded = EncodeKsKeys(blob);
  return tpm.NvWrite(NvSlot::kKsKeys, encoded.span());
}

}  // namespace kgr
