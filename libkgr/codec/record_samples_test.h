// Sample records, pattern keys and a field-by-field comparison for the
// record codec tests.
#ifndef KGR_CODEC_RECORD_SAMPLES_TEST_H_
#define KGR_CODEC_RECORD_SAMPLES_TEST_H_

#include <gtest/gtest.h>

#include <tuple>
#include <utility>

#include "kgr/records.h"

namespace kgr::record_samples {

inline constexpr uint32_t kOwner = 0x0a0b0c0d;

inline SymmetricKeys PatternKeys(uint8_t base) {
  SecretBytes enc(kKeySize), mac(kKeySize);
  for (size_t i = 0; i < kKeySize; ++i) {
    enc.data()[i] = static_cast<uint8_t>(base + i);
    mac.data()[i] = static_cast<uint8_t>(base + 0x80 + i);
  }
  return {std::move(enc), std::move(mac)};
}

inline TopicBytes PatternTopic(uint8_t base) {
  TopicBytes t;
  for (size_t i = 0; i < t.size(); ++i) t[i] = static_cast<uint8_t>(base + i);
  return t;
}

// Every field of `a` equals that of `b` (secrets in constant time).
template <typename R>
void ExpectEqual(const R& a, const R& b) {
  const auto fa = R::Fields(a);
  const auto fb = R::Fields(b);
  auto same = [](const auto& x, const auto& y, size_t i) {
    if constexpr (requires { x.Equals(y); }) {
      EXPECT_TRUE(x.Equals(y)) << "field " << i;
    } else {
      EXPECT_EQ(x, y) << "field " << i;
    }
  };
  [&]<size_t... I>(std::index_sequence<I...>) {
    (same(std::get<I>(fa), std::get<I>(fb), I), ...);
  }
  (std::make_index_sequence<std::tuple_size_v<decltype(fa)>>{});
}

}  // namespace kgr::record_samples

#endif  // KGR_CODEC_RECORD_SAMPLES_TEST_H_
