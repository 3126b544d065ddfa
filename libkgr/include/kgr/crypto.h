// Symmetric crypto of kgr on OpenSSL 3 EVP: CSPRNG, AES-256-CTR,
// HMAC-SHA256, encrypt-then-MAC, HKDF-SHA256, SHA-256.
//
// Every key the seed names comes as a pair (X, Xsign): an encryption key and
// a separate MAC key (NK/NKsign, NKSK/NKSKsign, NNSK/NNSKsign). Both are 32
// bytes. A failed MAC check always yields UNAUTHENTICATED with the single
// message kVerificationFailed, whatever went wrong, so that nothing can be
// learnt from the error. All functions are thread-safe.
#ifndef KGR_CRYPTO_H_
#define KGR_CRYPTO_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <span>
#include <utility>

#include "kgr/bytes.h"
#include "kgr/secret.h"
#include "kgr/status.h"

namespace kgr {

inline constexpr size_t kKeySize = 32;  // AES-256 key, HMAC-SHA256 key
inline constexpr size_t kIvSize = 16;   // AES-CTR initial counter block
inline constexpr size_t kTagSize = 32;  // HMAC-SHA256 output
inline constexpr char kVerificationFailed[] = "verification failed";

using Tag = std::array<uint8_t, kTagSize>;
using Iv = std::array<uint8_t, kIvSize>;
using Digest = std::array<uint8_t, 32>;

// Fills `out` from OpenSSL's DRBG. Fails only if the DRBG fails. For keys.
Status RandomBytes(std::span<uint8_t> out);
StatusOr<SecretBytes> RandomSecret(size_t n);
// The same DRBG output, for values that are not secret (IVs, request ids,
// topic names, jitter): served from a per-thread block of it (one DRBG call
// per 4 KiB), each byte handed out once and wiped from the block; a forked
// child never reuses its parent's block. Never for keys.
Status RandomPublicBytes(std::span<uint8_t> out);
StatusOr<Iv> RandomIv();         // RandomPublicBytes
StatusOr<uint64_t> RandomU64();  // RandomPublicBytes
StatusOr<uint32_t> RandomU32();  // RandomPublicBytes

// Mixes external entropy (e.g. TPM2_GetRandom output) into OpenSSL's DRBG
// (RAND_add). Counts as added entropy only; never weakens the DRBG.
void MixEntropy(std::span<const uint8_t> data);

namespace crypto_internal {
class PreparedKeys;  // crypto.cc
}  // namespace crypto_internal

// An encryption key and its MAC ("sign") key. Move-only; wiped on release.
struct SymmetricKeys {
  SymmetricKeys() = default;
  SymmetricKeys(SecretBytes enc_key, SecretBytes mac_key,
                std::shared_ptr<const crypto_internal::PreparedKeys> p = {})
      : enc(std::move(enc_key)),
        mac(std::move(mac_key)),
        prepared(std::move(p)) {}

  SecretBytes enc;
  SecretBytes mac;
  // Set by Prepare(): the AES key schedule and the HMAC state, computed once
  // and used by EtmSeal/EtmOpen (only while they still match enc and mac).
  // Shared by clones; freed and cleansed with the last of them.
  std::shared_ptr<const crypto_internal::PreparedKeys> prepared;

  // Two fresh random 32-byte keys.
  static StatusOr<SymmetricKeys> Generate();
  // Checks both are kKeySize bytes.
  static StatusOr<SymmetricKeys> FromBytes(std::span<const uint8_t> enc,
                                           std::span<const uint8_t> mac);
  SymmetricKeys Clone() const { return {enc.Clone(), mac.Clone(), prepared}; }
  // For keys used many times (store keys, a node's NKSK, the KS's cached
  // node entries): EtmSeal and EtmOpen then skip the key setup (an AES key
  // expansion and four SHA-256 blocks for the HMAC pads per call). Costs
  // about 1 KiB of key-equivalent state, kept until the keys are released.
  Status Prepare();
  bool valid() const {
    return enc.size() == kKeySize && mac.size() == kKeySize;
  }
};

// AES-256-CTR of `in` into `out` (same size; may alias).
Status AesCtr(const SecretBytes& key, const Iv& iv, std::span<const uint8_t> in,
              std::span<uint8_t> out);

// HMAC-SHA256 over the concatenation of `parts`.
StatusOr<Tag> HmacSha256(const SecretBytes& key,
                         std::initializer_list<std::span<const uint8_t>> parts);

// OK if `tag` equals HMAC-SHA256(key, parts...) (constant-time compare),
// else UNAUTHENTICATED(kVerificationFailed).
Status VerifyHmacSha256(const SecretBytes& key,
                        std::initializer_list<std::span<const uint8_t>> parts,
                        std::span<const uint8_t> tag);

// The same with the MAC key of `keys` (keys.mac), using its prepared state
// when it has one (see SymmetricKeys::Prepare).
StatusOr<Tag> HmacSha256(const SymmetricKeys& keys,
                         std::initializer_list<std::span<const uint8_t>> parts);
Status VerifyHmacSha256(const SymmetricKeys& keys,
                        std::initializer_list<std::span<const uint8_t>> parts,
                        std::span<const uint8_t> tag);

Digest Sha256(std::initializer_list<std::span<const uint8_t>> parts);

// HKDF-SHA256 (RFC 5869) producing `length` bytes.
StatusOr<SecretBytes> Hkdf(std::span<const uint8_t> ikm,
                           std::span<const uint8_t> salt,
                           std::span<const uint8_t> info, size_t length);

// HKDF-SHA256 producing 64 bytes split into (enc = first 32, mac = last 32).
StatusOr<SymmetricKeys> DeriveKeys(std::span<const uint8_t> ikm,
                                   std::span<const uint8_t> salt,
                                   std::span<const uint8_t> info);

// Encrypt-then-MAC. `out` already holds an authenticated prefix (a header
// that contains `iv`) starting at out[mac_from]. Appends
// AES-256-CTR(keys.enc, iv, plaintext) and then the HMAC-SHA256 with
// keys.mac of out[mac_from..] (prefix and ciphertext).
Status EtmSeal(const SymmetricKeys& keys, const Iv& iv,
               std::span<const uint8_t> plaintext, Bytes* out,
               size_t mac_from = 0);

// Inverse of EtmSeal: checks `tag` over `authenticated` (prefix||ciphertext)
// in constant time first, and only then decrypts `ciphertext` (a subspan of
// `authenticated`). UNAUTHENTICATED(kVerificationFailed) on a bad tag.
StatusOr<SecretBytes> EtmOpen(const SymmetricKeys& keys, const Iv& iv,
                              std::span<const uint8_t> authenticated,
                              std::span<const uint8_t> ciphertext,
                              std::span<const uint8_t> tag);

// X25519 (RFC 7748) for ephemeral key agreement (NKSK rotation).
inline constexpr size_t kX25519Size = 32;
struct X25519KeyPair {
  SecretBytes private_key;  // 32 bytes, raw
  Bytes public_key;         // 32 bytes, raw
};
StatusOr<X25519KeyPair> GenerateX25519();
// The shared secret of our private key and the peer's public key.
// INVALID_ARGUMENT for a malformed or low-order public key.
StatusOr<SecretBytes> X25519SharedSecret(const SecretBytes& private_key,
                                         std::span<const uint8_t> peer_public);

}  // namespace kgr

#endif  // KGR_CRYPTO_H_
