// Hex of bytes, keys and N_IDs for docs/test-vectors.json (gen_vectors.cc,
// group_vectors.cc).
#ifndef KGR_TESTS_VECTORS_HEX_H_
#define KGR_TESTS_VECTORS_HEX_H_

#include <cstdint>
#include <cstdio>
#include <span>
#include <string>

#include "kgr/bytes.h"
#include "kgr/crypto.h"

namespace kgr::vectors {

inline std::string Hex(std::span<const uint8_t> b) { return ToHex(b); }
// enc || mac.
inline std::string HexKeys(const SymmetricKeys& k) {
  return Hex(k.RawEncKeyBytes().span()) + Hex(k.RawMacKeyBytes().span());
}
// An N_ID or group id: 8 hex digits.
inline std::string Hex32(uint32_t v) {
  char b[9];
  std::snprintf(b, sizeof b, "%08x", v);
  return b;
}

}  // namespace kgr::vectors

#endif  // KGR_TESTS_VECTORS_HEX_H_
