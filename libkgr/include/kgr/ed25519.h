// Ed25519 (RFC 8032) signatures for group messages with sender
// authentication (docs/protocol.md section 12): each node signs with its own
// key pair, whose public half the KS distributes with a group's membership.
// OpenSSL 3 EVP, pure Ed25519 (no prehash, no context). Thread-safe.
#ifndef KGR_ED25519_H_
#define KGR_ED25519_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

#include "kgr/bytes.h"
#include "kgr/secret.h"
#include "kgr/status.h"

namespace kgr {

inline constexpr size_t kEd25519PublicSize = 32;
inline constexpr size_t kEd25519PrivateSize = 32;  // the RFC 8032 seed
inline constexpr size_t kEd25519SignatureSize = 64;

using Ed25519Signature = std::array<uint8_t, kEd25519SignatureSize>;

struct Ed25519KeyPair {
  SecretBytes private_key;  // 32 bytes (the seed)
  Bytes public_key;         // 32 bytes
};

// A fresh key pair from OpenSSL's DRBG.
StatusOr<Ed25519KeyPair> GenerateEd25519();
// The public key of a private key (INVALID_ARGUMENT if not 32 bytes).
StatusOr<Bytes> Ed25519PublicKey(const SecretBytes& private_key);
// Signs the concatenation of `parts`.
StatusOr<Ed25519Signature> Ed25519Sign(
    const SecretBytes& private_key,
    std::initializer_list<std::span<const uint8_t>> parts);
// OK if `signature` is a valid signature of `parts` under `public_key`,
// else UNAUTHENTICATED(kVerificationFailed) (also for a malformed key).
Status Ed25519Verify(std::span<const uint8_t> public_key,
                     std::initializer_list<std::span<const uint8_t>> parts,
                     std::span<const uint8_t> signature);

}  // namespace kgr

#endif  // KGR_ED25519_H_
