// Ed25519 signatures (RFC 8032, pure Ed25519) on OpenSSL 3.
//
// Used where a message must be authenticated to many receivers that must
// not be able to forge it: the KS signs every group_rekey frame
// (docs/protocol.md section 12) with its group signing key; members verify
// with its public half, which they receive under their NKSK. Keys are raw:
// a 32-byte private seed (SecretBytes) and a 32-byte public key.
// All functions are thread-safe.
#ifndef KGR_ED25519_H_
#define KGR_ED25519_H_

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <span>

#include "kgr/bytes.h"
#include "kgr/secret.h"
#include "kgr/status.h"

namespace kgr {

inline constexpr size_t kEd25519PrivateSize = 32;
inline constexpr size_t kEd25519PublicSize = 32;
inline constexpr size_t kEd25519SignatureSize = 64;

struct Ed25519KeyPair {
  SecretBytes private_key;  // 32-byte seed
  Bytes public_key;         // 32 bytes
};

// A fresh key pair from OpenSSL's DRBG.
StatusOr<Ed25519KeyPair> GenerateEd25519();
// The key pair of a 32-byte seed (INVALID_ARGUMENT for another size).
StatusOr<Ed25519KeyPair> Ed25519FromSeed(std::span<const uint8_t> seed);

// Signs the concatenation of `parts`.
StatusOr<Bytes> Ed25519Sign(
    const SecretBytes& private_key,
    std::initializer_list<std::span<const uint8_t>> parts);

// OK if `signature` is a valid signature of the concatenation of `parts`
// by `public_key`; else UNAUTHENTICATED(kVerificationFailed) (also for a
// malformed key or signature).
Status Ed25519Verify(std::span<const uint8_t> public_key,
                     std::initializer_list<std::span<const uint8_t>> parts,
                     std::span<const uint8_t> signature);

}  // namespace kgr

#endif  // KGR_ED25519_H_
