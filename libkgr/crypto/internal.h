// Internals of crypto/: the raw primitives under EtmSeal/EtmOpen and the
// hook behind the test-only fixed IVs. For crypto/'s own tests and
// libkgr/testing/crypto_testing.h only; no other part of libkgr includes it
// (crypto/test_only_test.cc checks).
#ifndef KGR_CRYPTO_INTERNAL_H_
#define KGR_CRYPTO_INTERNAL_H_

#include <span>

#include "kgr/crypto.h"

namespace kgr::crypto_internal {

// A fresh IV (RandomPublicBytes).
StatusOr<Iv> RandomIv();

// AES-256-CTR of `in` into `out` (same size; may alias).
Status AesCtr(const SecretBytes& key, const Iv& iv, std::span<const uint8_t> in,
              std::span<uint8_t> out);

// While `iv` is set (not null), EtmSeal on the calling thread seals under
// *iv instead of a fresh IV. Only crypto_testing::FixedIvScope calls it.
void SetThreadFixedIv(const Iv* iv);

}  // namespace kgr::crypto_internal

#endif  // KGR_CRYPTO_INTERNAL_H_
