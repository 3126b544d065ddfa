// Key derivations of the protocol (docs/protocol.md sections 1 and 9):
// registration keys and request id from the NTAG, the NTAG itself, and the
// NKSK pair of a rotation.
#include <openssl/crypto.h>

#include "kgr/frame.h"

namespace kgr {
namespace {

constexpr char kRegistrationSalt[] = "kgr/v1 registration";

template <size_t N>
void WipeArray(std::array<uint8_t, N>& a) {
  OPENSSL_cleanse(a.data(), a.size());
}

}  // namespace

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

}  // namespace kgr
