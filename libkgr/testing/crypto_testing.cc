#include "testing/crypto_testing.h"

#include "crypto/internal.h"

namespace kgr::crypto_testing {

FixedIvScope::FixedIvScope(const Iv& iv) : iv_(iv) {
  crypto_internal::SetThreadFixedIv(&iv_);
}

FixedIvScope::~FixedIvScope() { crypto_internal::SetThreadFixedIv(nullptr); }

}  // namespace kgr::crypto_testing
