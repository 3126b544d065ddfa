// EtmSeal draws its own IV and writes it where the format carries it; only
// the test-only FixedIvScope can fix it, on its own thread, for its life.
#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <thread>

#include "kgr/crypto.h"
#include "testing/crypto_testing.h"

namespace kgr {
namespace {

constexpr size_t kIvAt = 5;

// A 3-byte prefix, the IV slot (filled with 0xEE) and 2 more bytes.
Bytes Prefix() {
  Bytes p = {0xA0, 0xA1, 0xA2, 0xA3, 0xA4};
  p.resize(p.size() + kIvSize, 0xEE);
  p.push_back(0xB0);
  p.push_back(0xB1);
  return p;
}

Iv IvOf(const Bytes& sealed) {
  Iv iv;
  std::copy_n(sealed.begin() + kIvAt, kIvSize, iv.begin());
  return iv;
}

Bytes Seal(const SymmetricKeys& k, std::span<const uint8_t> pt) {
  Bytes out = Prefix();
  EXPECT_TRUE(EtmSeal(k, kIvAt, pt, &out).ok());
  return out;
}

TEST(EtmIv, SealDrawsAFreshIvIntoItsSlotAndOpenReadsItFromThere) {
  auto keys = SymmetricKeys::Generate();
  ASSERT_TRUE(keys.ok());
  const Bytes pt(64, 0x11);
  const Bytes prefix = Prefix();
  std::set<Iv> ivs;
  std::set<Bytes> ciphertexts;
  for (int i = 0; i < 100; ++i) {
    Bytes sealed = Seal(*keys, pt);
    ASSERT_EQ(sealed.size(), prefix.size() + pt.size() + kTagSize);
    // Only the IV slot of the prefix changed.
    EXPECT_TRUE(
        std::equal(prefix.begin(), prefix.begin() + kIvAt, sealed.begin()));
    EXPECT_TRUE(std::equal(prefix.begin() + kIvAt + kIvSize, prefix.end(),
                           sealed.begin() + kIvAt + kIvSize));
    EXPECT_TRUE(ivs.insert(IvOf(sealed)).second) << "IV repeated at " << i;
    ciphertexts.insert(
        Bytes(sealed.begin() + prefix.size(), sealed.end() - kTagSize));
    std::span<const uint8_t> all(sealed);
    auto opened = EtmOpen(*keys, all.first(sealed.size() - kTagSize), kIvAt,
                          prefix.size(), all.last(kTagSize));
    ASSERT_TRUE(opened.ok()) << opened.status().ToString();
    EXPECT_TRUE(ConstantTimeEquals(opened->span(), pt));
  }
  EXPECT_EQ(ciphertexts.size(), 100u);
  EXPECT_EQ(ivs.count(Iv{}), 0u);
}

TEST(EtmIv, FixedIvScopeHoldsOnlyOnItsThreadAndWhileAlive) {
  auto keys = SymmetricKeys::Generate();
  ASSERT_TRUE(keys.ok());
  const Bytes pt = {1, 2, 3};
  Iv fixed;
  for (size_t i = 0; i < fixed.size(); ++i) fixed[i] = static_cast<uint8_t>(i);
  Bytes other_thread;
  {
    crypto_testing::FixedIvScope scope(fixed);
    Bytes a = Seal(*keys, pt);
    Bytes b = Seal(*keys, pt);
    EXPECT_EQ(IvOf(a), fixed);
    EXPECT_EQ(a, b) << "deterministic under a fixed IV";
    std::thread([&] { other_thread = Seal(*keys, pt); }).join();
  }
  EXPECT_NE(IvOf(other_thread), fixed);
  EXPECT_NE(IvOf(Seal(*keys, pt)), fixed) << "the scope has ended";
}

TEST(EtmIv, OffsetsOutsideTheMessageAreRefused) {
  auto keys = SymmetricKeys::Generate();
  ASSERT_TRUE(keys.ok());
  Bytes out(kIvSize - 1);
  EXPECT_EQ(EtmSeal(*keys, 0, AsBytes("x"), &out).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(out.size(), kIvSize - 1) << "nothing appended";
  out = Bytes(kIvSize + 4);
  EXPECT_EQ(EtmSeal(*keys, 5, AsBytes("x"), &out).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(EtmSeal(*keys, 0, AsBytes("x"), &out, out.size() + 1).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(out.size(), kIvSize + 4);
  ASSERT_TRUE(EtmSeal(*keys, 4, AsBytes("x"), &out).ok());
  std::span<const uint8_t> all(out);
  auto auth = all.first(out.size() - kTagSize);
  auto tag = all.last(kTagSize);
  EXPECT_TRUE(EtmOpen(*keys, auth, 4, kIvSize + 4, tag).ok());
  // The IV would overlap the ciphertext, or the ciphertext would start
  // past the end.
  EXPECT_EQ(EtmOpen(*keys, auth, 5, kIvSize + 4, tag).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(EtmOpen(*keys, auth, 0, auth.size() + 1, tag).status().code(),
            StatusCode::kInvalidArgument);
  SymmetricKeys none;
  EXPECT_EQ(EtmSeal(none, 4, AsBytes("x"), &out).code(),
            StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace kgr
