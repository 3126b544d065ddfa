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
StatusOr<uint64_t> RandomU64();  // RandomPublicBytes
StatusOr<uint32_t> RandomU32();  // RandomPublicBytes

// Mixes external entropy (e.g. TPM2_GetRandom output) into OpenSSL's DRBG
// (RAND_add). Counts as added entropy only; never weakens the DRBG.
void MixEntropy(std::span<const uint8_t> data);

namespace crypto_internal {
class PreparedKeys;  // crypto.cc
}  // namespace crypto_internal
namespace crypto_testing {
struct KeyInternals;  // libkgr/testing/crypto_testing.h (tests only)
}  // namespace crypto_testing

// An encryption key and its MAC ("sign") key. Move-only; wiped on release.
//
// The key bytes are private: hand the pair to the functions below. The few
// places where raw key bytes really leave (an NV blob, a key wrapped into a
// frame body or a record, a derivation) read them through RawEncKeyBytes()
// and RawMacKeyBytes(), named so that grep finds every one.
class SymmetricKeys {
 public:
  SymmetricKeys() = default;  // empty: no key
  // Takes both keys as they are; valid() tells whether they are a usable
  // pair (FromBytes checks).
  SymmetricKeys(SecretBytes enc_key, SecretBytes mac_key)
      : enc_(std::move(enc_key)), mac_(std::move(mac_key)) {}

  // Two fresh random 32-byte keys.
  static StatusOr<SymmetricKeys> Generate();
  // Copies both; INVALID_ARGUMENT unless both are kKeySize bytes.
  static StatusOr<SymmetricKeys> FromBytes(std::span<const uint8_t> enc,
                                           std::span<const uint8_t> mac);

  // The prepared state (see Prepare) is shared with the clone.
  SymmetricKeys Clone() const {
    SymmetricKeys c(enc_.Clone(), mac_.Clone());
    c.prepared_ = prepared_;
    return c;
  }
  // For keys used many times (store keys, a node's NKSK, the KS's cached
  // node entries): computes the AES key schedule and the HMAC state once,
  // so that EtmSeal, EtmOpen and HmacSha256 then skip the key setup (an AES
  // key expansion and four SHA-256 blocks for the HMAC pads per call).
  // Costs about 1 KiB of key-equivalent state, shared by clones and
  // cleansed with the last of them.
  Status Prepare();
  bool prepared() const { return prepared_ != nullptr; }

  bool valid() const {
    return enc_.size() == kKeySize && mac_.size() == kKeySize;
  }
  bool empty() const { return enc_.empty() && mac_.empty(); }
  // Both keys equal those of `other` (constant time).
  bool Equals(const SymmetricKeys& other) const {
    // Both compared, whatever the first gives.
    return (static_cast<int>(enc_.Equals(other.enc_)) &
            static_cast<int>(mac_.Equals(other.mac_))) != 0;
  }

  // The raw key bytes, for where they must leave as bytes (see above).
  const SecretBytes& RawEncKeyBytes() const { return enc_; }
  const SecretBytes& RawMacKeyBytes() const { return mac_; }

 private:
  friend class crypto_internal::PreparedKeys;
  friend struct crypto_testing::KeyInternals;

  SecretBytes enc_;
  SecretBytes mac_;
  // Set by Prepare(); used only while it still matches enc_ and mac_.
  std::shared_ptr<const crypto_internal::PreparedKeys> prepared_;
};

// HMAC-SHA256 over the concatenation of `parts`.
StatusOr<Tag> HmacSha256(const SecretBytes& key,
                         std::initializer_list<std::span<const uint8_t>> parts);

// OK if `tag` equals HMAC-SHA256(key, parts...) (constant-time compare),
// else UNAUTHENTICATED(kVerificationFailed).
Status VerifyHmacSha256(const SecretBytes& key,
                        std::initializer_list<std::span<const uint8_t>> parts,
                        std::span<const uint8_t> tag);

// The same with the MAC key of `keys`, using its prepared state
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

// Encrypt-then-MAC under a fresh random IV, drawn here so that a caller
// never picks one. `out` already holds the message's prefix, with the
// kIvSize bytes at out[iv_at] where its format carries the IV (their
// content is overwritten with the IV); the MAC covers the prefix from
// out[mac_from] on. Appends AES-256-CTR(enc, iv, plaintext) and then
// HMAC-SHA256(mac, out[mac_from..]) (prefix and ciphertext):
//   out = prefix (IV at iv_at) || ciphertext || tag
// (Deterministic IVs for test vectors: libkgr/testing/crypto_testing.h.)
Status EtmSeal(const SymmetricKeys& keys, size_t iv_at,
               std::span<const uint8_t> plaintext, Bytes* out,
               size_t mac_from = 0);

// Inverse of EtmSeal: `authenticated` is what the tag covers, the prefix
// (the IV at authenticated[iv_at]) followed by the ciphertext, which starts
// at ciphertext_at and runs to the end. Checks `tag` in constant time
// first, and only then decrypts. UNAUTHENTICATED(kVerificationFailed) on a
// bad tag; INVALID_ARGUMENT if the offsets do not fit.
StatusOr<SecretBytes> EtmOpen(const SymmetricKeys& keys,
                              std::span<const uint8_t> authenticated,
                              size_t iv_at, size_t ciphertext_at,
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
