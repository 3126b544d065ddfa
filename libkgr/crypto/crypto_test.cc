#include "kgr/crypto.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <set>
#include <thread>
#include <vector>

#include "crypto/internal.h"
#include "testing/crypto_testing.h"

namespace kgr {
namespace {

using crypto_internal::AesCtr;
using crypto_internal::RandomIv;
using crypto_testing::FixedIvScope;
using crypto_testing::KeyInternals;

Bytes FromHexOrDie(std::string_view h) {
  Bytes b;
  EXPECT_TRUE(FromHex(h, &b));
  return b;
}

TEST(Crypto, HmacSha256KnownVector) {
  // Independent value: printf abc | openssl mac -digest SHA256 -macopt
  //   hexkey:000102...1f HMAC
  SecretBytes key(32);
  for (int i = 0; i < 32; ++i) key.data()[i] = static_cast<uint8_t>(i);
  auto tag = HmacSha256(key, {AsBytes("abc")});
  ASSERT_TRUE(tag.ok());
  EXPECT_EQ(ToHex(*tag),
            "f0133729c4163dede81e21cd47839256da58171238c8a0d874397c73b14e1e47");
}

TEST(Crypto, Sha256Abc) {
  auto d = Sha256({AsBytes("abc")});
  EXPECT_EQ(ToHex(d),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(Crypto, HkdfRfc5869Case1) {
  Bytes ikm = FromHexOrDie("0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b");
  Bytes salt = FromHexOrDie("000102030405060708090a0b0c");
  Bytes info = FromHexOrDie("f0f1f2f3f4f5f6f7f8f9");
  auto okm = Hkdf(ikm, salt, info, 42);
  ASSERT_TRUE(okm.ok());
  EXPECT_EQ(ToHex(okm->span()),
            "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf"
            "34007208d5b887185865");
}

TEST(Crypto, AesCtrNistSp80038aF55) {
  // NIST SP 800-38A F.5.5 CTR-AES256.Encrypt, first block.
  Bytes k = FromHexOrDie(
      "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4");
  Bytes ivb = FromHexOrDie("f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff");
  Bytes pt = FromHexOrDie("6bc1bee22e409f96e93d7e117393172a");
  SecretBytes key(k);
  Iv iv;
  std::copy(ivb.begin(), ivb.end(), iv.begin());
  Bytes ct(pt.size());
  ASSERT_TRUE(AesCtr(key, iv, pt, ct).ok());
  EXPECT_EQ(ToHex(ct), "601ec313775789a5b7a7f504bbf3d228");
}

// The per-thread contexts are reused and re-keyed: alternating keys, the
// zero key itself, sizes and threads must never change a result.
TEST(Crypto, ReusedContextsGiveTheSameResultsOnEveryThread) {
  SecretBytes k1(32), k2(32), zero(32);
  for (int i = 0; i < 32; ++i) {
    k1.data()[i] = static_cast<uint8_t>(i);
    k2.data()[i] = static_cast<uint8_t>(0xa5 ^ i);
  }
  Iv iv{};
  iv[15] = 7;
  Bytes long_in(1000, 0x5c);
  auto compute = [&](Bytes* out) {
    for (const SecretBytes* k : {&k1, &k2, &zero, &k1}) {
      auto t = HmacSha256(*k, {AsBytes("abc"), long_in});
      ASSERT_TRUE(t.ok());
      out->insert(out->end(), t->begin(), t->end());
      Bytes ct(long_in.size());
      ASSERT_TRUE(AesCtr(*k, iv, long_in, ct).ok());
      out->insert(out->end(), ct.begin(), ct.end());
    }
  };
  Bytes expected;
  compute(&expected);
  // The first HMAC is the known vector's key with more input: recompute it
  // in one piece to check the multi-part path as well.
  Bytes joined = {0x61, 0x62, 0x63};  // "abc"
  joined.insert(joined.end(), long_in.begin(), long_in.end());
  auto one = HmacSha256(k1, {joined});
  ASSERT_TRUE(one.ok());
  EXPECT_TRUE(std::equal(one->begin(), one->end(), expected.begin()));
  std::vector<Bytes> got(4);
  std::vector<std::thread> threads;
  for (auto& g : got) {
    threads.emplace_back([&compute, &g] {
      for (int i = 0; i < 50; ++i) {
        g.clear();
        compute(&g);
      }
    });
  }
  for (auto& t : threads) t.join();
  for (const auto& g : got) EXPECT_EQ(g, expected);
}

// IVs come from a per-thread block of DRBG output: never the same twice,
// not across threads, and not in a forked child (which must not reuse the
// parent's block).
TEST(Crypto, RandomIvsNeverRepeatAcrossThreadsAndFork) {
  std::set<Iv> seen;
  for (int i = 0; i < 5000; ++i) {
    auto iv = RandomIv();
    ASSERT_TRUE(iv.ok());
    ASSERT_TRUE(seen.insert(*iv).second) << "repeated IV at draw " << i;
  }
  std::vector<std::vector<Iv>> per_thread(3);
  std::vector<std::thread> threads;
  for (auto& v : per_thread) {
    threads.emplace_back([&v] {
      for (int i = 0; i < 1000; ++i) v.push_back(*RandomIv());
    });
  }
  for (auto& t : threads) t.join();
  for (const auto& v : per_thread) {
    for (const Iv& iv : v) EXPECT_TRUE(seen.insert(iv).second);
  }
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    Iv iv = *RandomIv();
    _exit(write(fds[1], iv.data(), iv.size()) == static_cast<ssize_t>(iv.size())
              ? 0
              : 1);
  }
  Iv from_child{};
  ASSERT_EQ(read(fds[0], from_child.data(), from_child.size()),
            static_cast<ssize_t>(from_child.size()));
  int status = 0;
  waitpid(child, &status, 0);
  close(fds[0]);
  close(fds[1]);
  EXPECT_TRUE(seen.insert(*RandomIv()).second);
  EXPECT_TRUE(seen.insert(from_child).second) << "child reused the block";
}

// Public random values of any size (across the block's end, and above the
// size served from the block) are never handed out twice.
TEST(Crypto, PublicRandomOfAnySizeNeverRepeats) {
  std::set<Bytes> seen;
  for (size_t i = 0; i < 3000; ++i) {
    Bytes b(8 + i % 300);
    ASSERT_TRUE(RandomPublicBytes(b).ok());
    ASSERT_TRUE(seen.insert(b).second) << "repeated at draw " << i;
  }
  std::set<uint64_t> ids;
  for (int i = 0; i < 1000; ++i) ASSERT_TRUE(ids.insert(*RandomU64()).second);
}

// Prepared keys give exactly the bytes of the plain path, on any thread,
// for clones, and never after the key bytes changed under them.
TEST(Crypto, PreparedKeysGiveTheSameBytesAsThePlainPath) {
  auto plain = SymmetricKeys::Generate();
  ASSERT_TRUE(plain.ok());
  SymmetricKeys prepared = plain->Clone();
  ASSERT_TRUE(prepared.Prepare().ok());
  SymmetricKeys clone = prepared.Clone();
  EXPECT_EQ(KeyInternals::PreparedState(clone),
            KeyInternals::PreparedState(prepared));
  Iv iv{};
  iv[3] = 9;
  // The IV goes at offset 1 of the header.
  Bytes header = {1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3},
        body(300, 0x42);
  auto seal = [&](const SymmetricKeys& k) {
    FixedIvScope fixed(iv);
    Bytes out = header;
    EXPECT_TRUE(EtmSeal(k, 1, body, &out).ok());
    return out;
  };
  const Bytes expected = seal(*plain);
  std::copy(iv.begin(), iv.end(), header.begin() + 1);  // as sealed
  EXPECT_EQ(seal(prepared), expected);
  auto tag_plain = HmacSha256(plain->RawMacKeyBytes(), {header, body});
  auto tag_prepared = HmacSha256(prepared, {header, body});
  ASSERT_TRUE(tag_plain.ok() && tag_prepared.ok());
  EXPECT_EQ(*tag_plain, *tag_prepared);
  EXPECT_TRUE(VerifyHmacSha256(clone, {header, body}, *tag_plain).ok());
  EXPECT_FALSE(VerifyHmacSha256(clone, {body, header}, *tag_plain).ok());
  EXPECT_EQ(seal(clone), expected);
  std::vector<std::thread> threads;
  std::vector<bool> same(4, false);
  for (size_t t = 0; t < same.size(); ++t) {
    threads.emplace_back([&, t] {
      bool ok = true;
      for (int i = 0; i < 200; ++i) {
        Bytes out = seal(i % 2 ? clone : prepared);
        std::span<const uint8_t> all(out);
        auto pt = EtmOpen(prepared, all.first(out.size() - kTagSize), 1,
                          header.size(), all.last(kTagSize));
        ok = ok && out == expected && pt.ok() &&
             ConstantTimeEquals(pt->span(), body);
      }
      same[t] = ok;
    });
  }
  for (auto& t : threads) t.join();
  for (bool ok : same) EXPECT_TRUE(ok);
  // A tampered frame is still refused on the prepared path.
  Bytes bad = expected;
  bad[5] ^= 1;
  std::span<const uint8_t> b(bad);
  EXPECT_EQ(EtmOpen(prepared, b.first(bad.size() - kTagSize), 1, header.size(),
                    b.last(kTagSize))
                .status()
                .code(),
            StatusCode::kUnauthenticated);
  // Key bytes replaced after Prepare(): the stale contexts are not used.
  auto other = SymmetricKeys::Generate();
  ASSERT_TRUE(other.ok());
  SymmetricKeys changed = prepared.Clone();
  KeyInternals::ReplaceMacKey(changed, other->RawMacKeyBytes().Clone());
  SymmetricKeys reference(plain->RawEncKeyBytes().Clone(),
                          other->RawMacKeyBytes().Clone());
  EXPECT_EQ(seal(changed), seal(reference));
}

TEST(Crypto, EtmRoundTripAndEveryBitFlipRejected) {
  auto keys = SymmetricKeys::Generate();
  ASSERT_TRUE(keys.ok());
  Bytes msg = {'h', 'd', 'r'};
  msg.resize(msg.size() + kIvSize);  // where the IV goes
  size_t header = msg.size();
  Bytes pt = {1, 2, 3, 4, 5, 6, 7, 8, 9};
  ASSERT_TRUE(EtmSeal(*keys, 3, pt, &msg).ok());
  ASSERT_EQ(msg.size(), header + pt.size() + kTagSize);
  auto open = [&](const Bytes& m) {
    std::span<const uint8_t> all(m);
    return EtmOpen(*keys, all.first(m.size() - kTagSize), 3, header,
                   all.last(kTagSize));
  };
  auto got = open(msg);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_TRUE(ConstantTimeEquals(got->span(), pt));
  for (size_t i = 0; i < msg.size() * 8; ++i) {
    Bytes bad = msg;
    bad[i / 8] ^= static_cast<uint8_t>(1u << (i % 8));
    auto r = open(bad);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), StatusCode::kUnauthenticated);
    EXPECT_EQ(r.status().message(), kVerificationFailed);
  }
}

TEST(Crypto, WrongKeyRejected) {
  auto a = SymmetricKeys::Generate();
  auto b = SymmetricKeys::Generate();
  Bytes msg(kIvSize);
  ASSERT_TRUE(EtmSeal(*a, 0, AsBytes("x"), &msg).ok());
  std::span<const uint8_t> all(msg);
  auto r = EtmOpen(*b, all.first(kIvSize + 1), 0, kIvSize, all.last(kTagSize));
  EXPECT_EQ(r.status().code(), StatusCode::kUnauthenticated);
}

TEST(Crypto, X25519Rfc7748Section6_1) {
  Bytes a_priv = FromHexOrDie(
      "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
  Bytes b_pub = FromHexOrDie(
      "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f");
  auto shared = X25519SharedSecret(SecretBytes(a_priv), b_pub);
  ASSERT_TRUE(shared.ok()) << shared.status().ToString();
  EXPECT_EQ(ToHex(shared->span()),
            "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742");
  auto x = GenerateX25519();
  auto y = GenerateX25519();
  ASSERT_TRUE(x.ok() && y.ok());
  auto s1 = X25519SharedSecret(x->private_key, y->public_key);
  auto s2 = X25519SharedSecret(y->private_key, x->public_key);
  ASSERT_TRUE(s1.ok() && s2.ok());
  EXPECT_TRUE(s1->Equals(*s2));
  EXPECT_FALSE(X25519SharedSecret(x->private_key, Bytes(32, 0)).ok());
}

// Word-wise compare: every length around the 8-byte steps, a difference in
// any single bit of any byte, and different lengths.
TEST(Crypto, ConstantTimeEqualsFindsEveryDifference) {
  for (size_t n = 0; n <= 41; ++n) {
    Bytes a(n);
    for (size_t i = 0; i < n; ++i) a[i] = static_cast<uint8_t>(i * 7 + 1);
    Bytes b = a;
    EXPECT_TRUE(ConstantTimeEquals(a, b)) << n;
    for (size_t i = 0; i < n; ++i) {
      for (int bit = 0; bit < 8; ++bit) {
        b[i] ^= static_cast<uint8_t>(1 << bit);
        EXPECT_FALSE(ConstantTimeEquals(a, b)) << n << " " << i << " " << bit;
        b[i] ^= static_cast<uint8_t>(1 << bit);
      }
    }
    Bytes longer = a;
    longer.push_back(0);
    EXPECT_FALSE(ConstantTimeEquals(a, longer)) << n;
  }
}

TEST(SecretBytes, MoveLeavesSourceEmptyAndCloneIsEqual) {
  SecretBytes a(AsBytes("secret"));
  SecretBytes c = a.Clone();
  SecretBytes b = std::move(a);
  EXPECT_TRUE(a.empty());  // NOLINT(bugprone-use-after-move)
  EXPECT_TRUE(b.Equals(c));
  b.Append(AsBytes("!"));
  EXPECT_EQ(b.size(), 7u);
  EXPECT_FALSE(b.Equals(c));
}

// Appends in pieces of every size, with and without room reserved, moved in
// between: the bytes are always exactly what was appended.
TEST(SecretBytes, AppendsAcrossGrowthReserveAndMoves) {
  for (size_t reserve : {size_t{0}, size_t{1}, size_t{50}, size_t{5000}}) {
    SecretBytes s;
    s.Reserve(reserve);
    EXPECT_TRUE(s.empty());
    Bytes want;
    for (size_t piece = 0; piece < 60; ++piece) {
      Bytes more(piece % 17);
      for (size_t i = 0; i < more.size(); ++i) {
        more[i] = static_cast<uint8_t>(want.size() + i);
      }
      s.Append(more);
      want.insert(want.end(), more.begin(), more.end());
      if (piece % 7 == 0) s = SecretBytes(std::move(s));
      if (piece % 11 == 0) s.Reserve(s.size() + 3);
      ASSERT_EQ(Bytes(s.span().begin(), s.span().end()), want) << piece;
    }
    SecretBytes moved = std::move(s);
    moved.Append(AsBytes("x"));
    want.push_back('x');
    EXPECT_EQ(Bytes(moved.span().begin(), moved.span().end()), want);
    moved.Clear();
    EXPECT_TRUE(moved.empty());
    moved.Append(AsBytes("ab"));
    EXPECT_EQ(moved.size(), 2u);
  }
}

}  // namespace
}  // namespace kgr
