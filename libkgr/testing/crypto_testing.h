// Test-only access to crypto/: fixed IVs for test vectors, and the insides
// of a SymmetricKeys for crypto/'s own tests.
//
// Production code cannot reach these by accident: FixedIvScope is defined
// only in kgr_testing, which no executable links (a use outside the tests
// does not link), and crypto/test_only_test.cc fails if a source outside
// the tests names this header or crypto_testing.
#ifndef KGR_TESTING_CRYPTO_TESTING_H_
#define KGR_TESTING_CRYPTO_TESTING_H_

#include <memory>

#include "kgr/crypto.h"

namespace kgr::crypto_testing {

// While alive, every EtmSeal on the constructing thread (and so SealFrame,
// EncodeRecord, RecordCodec::Encode) seals under `iv` instead of a fresh
// random IV: for test vectors and byte-exact layout tests. Reusing an IV
// under one key breaks AES-CTR: never outside tests. Not nestable.
class FixedIvScope {
 public:
  explicit FixedIvScope(const Iv& iv);
  ~FixedIvScope();
  FixedIvScope(const FixedIvScope&) = delete;
  FixedIvScope& operator=(const FixedIvScope&) = delete;

 private:
  const Iv iv_;
};

// The private parts of a SymmetricKeys, for tests of the prepared path.
struct KeyInternals {
  static const void* PreparedState(const SymmetricKeys& k) {
    return k.prepared_.get();
  }
  // Replaces the MAC key and keeps the prepared state (now stale).
  static void ReplaceMacKey(SymmetricKeys& k, SecretBytes mac) {
    k.mac_ = std::move(mac);
  }
};

}  // namespace kgr::crypto_testing

#endif  // KGR_TESTING_CRYPTO_TESTING_H_
