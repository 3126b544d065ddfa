// The member key of the ceremony and the wrapping of the domain key to it
// (kgr/cluster_membership.h):
//   member_key file := "KGRM" version:u8 = 1 reserved:u8*3 = 0
//                      public:bytes[32] iv:bytes[16] CTR(NK, iv, private:32)
//                      HMAC(NKsign, everything before)
//   wrapped := ephemeral_public:bytes[32] iv:bytes[16]
//              CTR(K, iv, enc:32 mac:32) HMAC(K, everything before)
//   K := HKDF-SHA256(ikm = X25519(ephemeral, member), salt = ephemeral
//        public || member public, info = "kgr/v1 domain key wrap" ||
//        domain_id:u32 || generation:u32 || lane:u8)
#include <algorithm>
#include <array>
#include <cstdio>

#include "kgr/cluster_membership.h"
#include "kgr/records.h"

namespace kgr {
namespace {

constexpr std::array<uint8_t, 4> kMemberMagic = {'K', 'G', 'R', 'M'};
constexpr size_t kMemberPublicAt = 8;
constexpr size_t kMemberIvAt = kMemberPublicAt + kX25519Size;
constexpr size_t kMemberCiphertextAt = kMemberIvAt + kIvSize;
constexpr size_t kMemberFileSize = kMemberCiphertextAt + kX25519Size + 32;

constexpr size_t kWrapIvAt = kX25519Size;
constexpr size_t kWrapCiphertextAt = kWrapIvAt + kIvSize;
constexpr size_t kWrappedSize = kWrapCiphertextAt + 2 * kKeySize + 32;

void AppendBigEndian32(Bytes& out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) {
    out.push_back(static_cast<uint8_t>(v >> shift));
  }
}

StatusOr<SymmetricKeys> WrapKeys(std::span<const uint8_t> shared_secret,
                                 std::span<const uint8_t> ephemeral_public,
                                 std::span<const uint8_t> member_public,
                                 uint32_t domain_id, uint32_t generation,
                                 uint8_t lane) {
  Bytes salt(ephemeral_public.begin(), ephemeral_public.end());
  salt.insert(salt.end(), member_public.begin(), member_public.end());
  static constexpr std::string_view kLabel = "kgr/v1 domain key wrap";
  Bytes info(kLabel.begin(), kLabel.end());
  AppendBigEndian32(info, domain_id);
  AppendBigEndian32(info, generation);
  info.push_back(lane);
  return DeriveKeys(shared_secret, salt, info);
}

StatusOr<X25519KeyPair> NewMemberKey(FileSystem& fs, const std::string& path,
                                     const RecordKeys& member_nk) {
  KGR_ASSIGN_OR_RETURN(X25519KeyPair pair, GenerateX25519());
  Bytes out(kMemberMagic.begin(), kMemberMagic.end());
  out.insert(out.end(), {1, 0, 0, 0});
  out.insert(out.end(), pair.public_key.begin(), pair.public_key.end());
  out.resize(kMemberCiphertextAt, 0);
  KGR_RETURN_IF_ERROR(
      EtmSeal(member_nk, kMemberIvAt, pair.private_key.span(), &out));
  KGR_RETURN_IF_ERROR(fs.WriteFileAtomic(path, out, 0600));
  return pair;
}

}  // namespace

std::string MemberKeyPath(const std::string& state_dir) {
  return state_dir + "/member_key";
}

StatusOr<X25519KeyPair> LoadMemberKey(FileSystem& fs, const std::string& path,
                                      const RecordKeys& member_nk,
                                      bool create) {
  if (!fs.Exists(path)) {
    if (create) return NewMemberKey(fs, path, member_nk);
    return NotFoundError("no member key: " + path +
                         " (kgr-ks cluster init or join makes it)");
  }
  KGR_ASSIGN_OR_RETURN(Bytes file, fs.ReadFile(path));
  if (file.size() != kMemberFileSize ||
      !std::equal(kMemberMagic.begin(), kMemberMagic.end(), file.begin()) ||
      file[4] != 1) {
    return DataLossError(path + ": not a member key file (version 1)");
  }
  std::span<const uint8_t> all(file);
  auto plain = EtmOpen(member_nk, all.first(kMemberFileSize - 32), kMemberIvAt,
                       kMemberCiphertextAt, all.last(32));
  if (!plain.ok()) {
    return DataLossError(path +
                         ": verification failed (another member's "
                         "file, or damaged)");
  }
  X25519KeyPair pair;
  pair.public_key.assign(file.begin() + kMemberPublicAt,
                         file.begin() + kMemberIvAt);
  pair.private_key = std::move(*plain);
  return pair;
}

std::string MemberFingerprint(std::span<const uint8_t> public_key) {
  const Digest d = Sha256({public_key});
  std::string hex = ToHex(std::span<const uint8_t>(d.data(), 16));
  std::string out;
  for (size_t i = 0; i < hex.size(); i += 4) {
    if (!out.empty()) out += '-';
    out += hex.substr(i, 4);
  }
  return out;
}

StatusOr<Bytes> WrapDomainKey(const DomainKey& key, uint8_t lane,
                              std::span<const uint8_t> member_public) {
  if (member_public.size() != kX25519Size) {
    return InvalidArgumentError("member public key: expected 32 bytes");
  }
  KGR_ASSIGN_OR_RETURN(X25519KeyPair eph, GenerateX25519());
  KGR_ASSIGN_OR_RETURN(SecretBytes shared,
                       X25519SharedSecret(eph.private_key, member_public));
  KGR_ASSIGN_OR_RETURN(SymmetricKeys k,
                       WrapKeys(shared.span(), eph.public_key, member_public,
                                key.domain_id, key.generation, lane));
  Bytes out = eph.public_key;
  out.resize(kWrapCiphertextAt, 0);
  SecretBytes plain(key.keys.RawEncKeyBytes().span());
  plain.Append(key.keys.RawMacKeyBytes().span());
  KGR_RETURN_IF_ERROR(EtmSeal(k, kWrapIvAt, plain.span(), &out));
  return out;
}

StatusOr<DomainKey> UnwrapDomainKey(std::span<const uint8_t> wrapped,
                                    uint32_t domain_id, uint32_t generation,
                                    uint8_t lane, const X25519KeyPair& member) {
  if (wrapped.size() != kWrappedSize) {
    return DataLossError("wrapped domain key: bad size");
  }
  auto eph_public = wrapped.first(kX25519Size);
  KGR_ASSIGN_OR_RETURN(SecretBytes shared,
                       X25519SharedSecret(member.private_key, eph_public));
  KGR_ASSIGN_OR_RETURN(SymmetricKeys k,
                       WrapKeys(shared.span(), eph_public, member.public_key,
                                domain_id, generation, lane));
  auto plain = EtmOpen(k, wrapped.first(kWrappedSize - 32), kWrapIvAt,
                       kWrapCiphertextAt, wrapped.last(32));
  if (!plain.ok()) {
    return DataLossError(
        "wrapped domain key: verification failed (not wrapped to this "
        "member's key, or damaged)");
  }
  DomainKey key;
  key.domain_id = domain_id;
  key.generation = generation;
  KGR_ASSIGN_OR_RETURN(key.keys,
                       SymmetricKeys::FromBytes(plain->span().first(kKeySize),
                                                plain->span().last(kKeySize)));
  return key;
}

}  // namespace kgr
