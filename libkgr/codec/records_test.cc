#include "kgr/records.h"

#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

#include "codec/record_samples_test.h"
#include "crypto/internal.h"
#include "testing/crypto_testing.h"

namespace kgr {
namespace {

using record_samples::ExpectEqual;
using record_samples::kOwner;
using record_samples::PatternKeys;
using record_samples::PatternTopic;

Iv FixedIv() {
  Iv iv;
  for (size_t i = 0; i < iv.size(); ++i) iv[i] = static_cast<uint8_t>(0xf0 + i);
  return iv;
}

NodeDesc SampleNode(bool registered) {
  NodeDesc d;
  d.n_id = 0x12345678;
  d.entry_no = 7;
  d.state = registered ? NodeState::kRegistered : NodeState::kAuthorized;
  d.allowed_peers = {1, 2, 0xffffffff};
  d.last_counter = 0x0102030405060708;
  d.ntag = SecretBytes(kRecordNtagSize);
  for (size_t i = 0; i < kRecordNtagSize; ++i)
    d.ntag.data()[i] = static_cast<uint8_t>(i * 3);
  if (registered) {
    d.nksk = PatternKeys(0x40);
    d.topic2 = PatternTopic(0x20);
  }
  return d;
}

GenKey SampleGen(bool with_topic4) {
  GenKey g;
  g.n_id1 = 0x11111111;
  g.request_id = 0xdeadbeefcafef00d;
  g.ctime_unix_ms = 1600000000000;
  g.step = with_topic4 ? 5 : 2;
  g.renewal = with_topic4;
  g.n_id2 = 0x22222222;
  g.nnsk = PatternKeys(0x60);
  g.topic3 = PatternTopic(0x30);
  if (with_topic4) g.topic4 = PatternTopic(0x40);
  return g;
}

SesKey SampleSes(bool with_key) {
  SesKey k;
  k.n_id = 0x33333333;
  k.topic3 = PatternTopic(0x50);
  if (with_key) {
    k.ctime_unix_ms = 1600000000123;
    k.key_version = 3;
    k.frames_sent = 99;
    k.bytes_sent = 12345;
    k.nnsk = PatternKeys(0x70);
    k.topic4 = PatternTopic(0x60);
  }
  return k;
}

template <typename R>
void RoundTrip(const R& r) {
  SymmetricKeys nk = PatternKeys(1);
  auto enc = EncodeRecord(r, nk, kOwner);
  ASSERT_TRUE(enc.ok()) << enc.status().ToString();
  auto dec = DecodeRecord<R>(*enc, nk, kOwner);
  ASSERT_TRUE(dec.ok()) << dec.status().ToString();
  ExpectEqual(r, *dec);
  auto key = VerifyRecord(*enc, R::kType, nk, kOwner);
  ASSERT_TRUE(key.ok());
  EXPECT_EQ(*key, uint64_t{r.key()});
  EXPECT_EQ(PeekRecordKey(*enc), uint64_t{r.key()});
}

// The samples of each record type; the last one has every field set.
template <typename R>
std::vector<R> Samples();
template <>
std::vector<NodeDesc> Samples() {
  NodeDesc many = SampleNode(true);
  many.allowed_peers.assign(kMaxAllowedPeers, 42);
  std::vector<NodeDesc> v;
  v.push_back(SampleNode(false));
  v.push_back(std::move(many));
  v.push_back(SampleNode(true));
  return v;
}
template <>
std::vector<GenKey> Samples() {
  std::vector<GenKey> v;
  v.push_back(SampleGen(false));
  v.push_back(SampleGen(true));
  return v;
}
template <>
std::vector<SesKey> Samples() {
  SesKey empty;  // the seed's fresh entry from 4.6: only the N_ID
  empty.n_id = 5;
  std::vector<SesKey> v;
  v.push_back(std::move(empty));
  v.push_back(SampleSes(false));
  v.push_back(SampleSes(true));
  return v;
}

template <typename R>
class EveryRecord : public ::testing::Test {};
using RecordTypes = ::testing::Types<NodeDesc, GenKey, SesKey>;
TYPED_TEST_SUITE(EveryRecord, RecordTypes);

TYPED_TEST(EveryRecord, RoundTrips) {
  for (const TypeParam& r : Samples<TypeParam>()) RoundTrip(r);
}

TYPED_TEST(EveryRecord, CloneCopiesEveryField) {
  for (const TypeParam& r : Samples<TypeParam>()) ExpectEqual(r, r.Clone());
}

TEST(Records, CloneIsDeep) {
  NodeDesc d = SampleNode(true);
  NodeDesc c = d.Clone();
  d.ntag.data()[0] ^= 1;
  EXPECT_FALSE(c.ntag.Equals(d.ntag));
  EXPECT_TRUE(c.nksk.valid());
}

TEST(Records, RandomIvDiffersFixedIvIsDeterministic) {
  SymmetricKeys nk = PatternKeys(1);
  NodeDesc d = SampleNode(true);
  auto a = EncodeRecord(d, nk, kOwner);
  auto b = EncodeRecord(d, nk, kOwner);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(*a, *b);
  crypto_testing::FixedIvScope fixed(FixedIv());
  auto c = EncodeRecord(d, nk, kOwner);
  auto e = EncodeRecord(d, nk, kOwner);
  ASSERT_TRUE(c.ok() && e.ok());
  EXPECT_EQ(*c, *e);
}

// Freezes the byte layout of docs/storage.md. The clear part and the IV are
// checked byte by byte; the ciphertext and tag are whatever they are (the
// record must also decode).
TEST(Records, GoldenSesKeyLayout) {
  SymmetricKeys nk = PatternKeys(1);
  SesKey k;
  k.n_id = 0x01020304;
  k.ctime_unix_ms = 5;
  k.key_version = 6;
  k.frames_sent = 7;
  k.bytes_sent = 8;
  k.rx_counter = 9;
  k.topic3 = PatternTopic(0);
  auto enc = [&] {
    crypto_testing::FixedIvScope fixed(FixedIv());
    return EncodeRecord(k, nk, kOwner);
  }();
  ASSERT_TRUE(enc.ok());
  std::string hex = ToHex(*enc);
  EXPECT_EQ(hex.substr(0, (1 + 1 + 8 + 2 + 36 + 16 + 2) * 2),
            "01"                                // version
            "03"                                // type ses_keys
            "0000000001020304"                  // key = N_ID
            "0024"                              // clear length 36
            "0000000000000005"                  // ctime
            "00000006"                          // key_version
            "0000000000000007"                  // frames_sent
            "0000000000000008"                  // bytes_sent
            "0000000000000009"                  // rx_counter
            "f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff"  // IV
            "000b");  // ciphertext length: flags + TOPIC3
  EXPECT_EQ(enc->size(), 1 + 1 + 8 + 2 + 36 + 16 + 2 + 11 + kTagSize);
  // The secret part is AES-256-CTR(NK, IV) of 02 || TOPIC3.
  Bytes pt = {0x02, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
  Bytes ct(pt.size());
  ASSERT_TRUE(
      crypto_internal::AesCtr(nk.RawEncKeyBytes(), FixedIv(), pt, ct).ok());
  EXPECT_EQ(Bytes(enc->begin() + 66, enc->begin() + 77), ct);
  // The tag is HMAC(NKsign, "KGR-REC1" || owner || SHA-256("KGR-NK-CHECK" ||
  // NK) || record without tag).
  Bytes ctx = {'K', 'G', 'R', '-', 'R', 'E', 'C', '1', 0x0a, 0x0b, 0x0c, 0x0d};
  Digest check = Sha256({AsBytes("KGR-NK-CHECK"), nk.RawEncKeyBytes().span()});
  auto tag = HmacSha256(nk.RawMacKeyBytes(),
                        {ctx, check, std::span<const uint8_t>(*enc).first(77)});
  ASSERT_TRUE(tag.ok());
  EXPECT_EQ(Bytes(enc->begin() + 77, enc->end()),
            Bytes(tag->begin(), tag->end()));
}

template <typename R>
void EveryBitFlipAndTruncationRejected(const R& r) {
  SymmetricKeys nk = PatternKeys(1);
  auto enc = EncodeRecord(r, nk, kOwner);
  ASSERT_TRUE(enc.ok());
  for (size_t i = 0; i < enc->size(); ++i) {
    for (int bit = 0; bit < 8; ++bit) {
      Bytes b = *enc;
      b[i] ^= static_cast<uint8_t>(1 << bit);
      EXPECT_FALSE(DecodeRecord<R>(b, nk, kOwner).ok())
          << "byte " << i << " bit " << bit;
      EXPECT_FALSE(VerifyRecord(b, R::kType, nk, kOwner).ok());
    }
  }
  for (size_t n = 0; n < enc->size(); ++n) {
    std::span<const uint8_t> t(enc->data(), n);
    EXPECT_FALSE(DecodeRecord<R>(t, nk, kOwner).ok()) << "length " << n;
    EXPECT_FALSE(VerifyRecord(t, R::kType, nk, kOwner).ok());
  }
  Bytes longer = *enc;
  longer.push_back(0);
  auto s = DecodeRecord<R>(longer, nk, kOwner);
  EXPECT_EQ(s.status().code(), StatusCode::kInvalidArgument);
}

TYPED_TEST(EveryRecord, EveryBitFlipAndTruncationRejected) {
  EveryBitFlipAndTruncationRejected(Samples<TypeParam>().back());
}

TEST(Records, TamperedMacIsDataLossVerificationFailed) {
  SymmetricKeys nk = PatternKeys(1);
  auto enc = EncodeRecord(SampleNode(true), nk, kOwner);
  ASSERT_TRUE(enc.ok());
  (*enc)[20] ^= 1;  // inside the clear part
  auto d = DecodeRecord<NodeDesc>(*enc, nk, kOwner);
  EXPECT_EQ(d.status().code(), StatusCode::kDataLoss);
  EXPECT_EQ(d.status().message(), kVerificationFailed);
}

TEST(Records, WrongKeysRejected) {
  SymmetricKeys nk = PatternKeys(1);
  auto enc = EncodeRecord(SampleGen(true), nk, kOwner);
  ASSERT_TRUE(enc.ok());
  SymmetricKeys other = PatternKeys(2);
  // Wrong NKsign.
  SymmetricKeys wrong_mac{nk.RawEncKeyBytes().Clone(),
                          other.RawMacKeyBytes().Clone()};
  EXPECT_EQ(DecodeRecord<GenKey>(*enc, wrong_mac, kOwner).status().code(),
            StatusCode::kDataLoss);
  // Wrong NK with the right NKsign: the NK check value in the MAC catches it.
  SymmetricKeys wrong_enc{other.RawEncKeyBytes().Clone(),
                          nk.RawMacKeyBytes().Clone()};
  EXPECT_EQ(DecodeRecord<GenKey>(*enc, wrong_enc, kOwner).status().code(),
            StatusCode::kDataLoss);
  EXPECT_FALSE(VerifyRecord(*enc, RecordType::kGenKey, wrong_enc, kOwner).ok());
  // Invalid key sizes.
  SymmetricKeys bad{SecretBytes(16), SecretBytes(32)};
  EXPECT_EQ(DecodeRecord<GenKey>(*enc, bad, kOwner).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(EncodeRecord(SampleGen(true), bad, kOwner).status().code(),
            StatusCode::kInvalidArgument);
}

TEST(Records, MovedToOtherOwnerOrFileRejected) {
  SymmetricKeys nk = PatternKeys(1);
  auto enc = EncodeRecord(SampleSes(true), nk, kOwner);
  ASSERT_TRUE(enc.ok());
  EXPECT_EQ(DecodeRecord<SesKey>(*enc, nk, kOwner + 1).status().code(),
            StatusCode::kDataLoss);
  EXPECT_EQ(DecodeRecord<NodeDesc>(*enc, nk, kOwner).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(DecodeRecord<GenKey>(*enc, nk, kOwner).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_FALSE(VerifyRecord(*enc, RecordType::kNodeDesc, nk, kOwner).ok());
  // Relabelling the type byte breaks the MAC.
  Bytes relabelled = *enc;
  relabelled[1] = static_cast<uint8_t>(RecordType::kNodeDesc);
  EXPECT_FALSE(DecodeRecord<NodeDesc>(relabelled, nk, kOwner).ok());
}

TEST(Records, CodecAgreesWithTheFreeFunctions) {
  SymmetricKeys nk = PatternKeys(1);
  const RecordCodec codec(nk, kOwner);
  std::vector<Bytes> recs;
  for (uint32_t i = 0; i < 8; ++i) {
    SesKey k = SampleSes(i % 2 == 0);
    k.n_id = i;
    // Sealed alternately by the codec and by EncodeRecord: each side reads
    // the other's records.
    auto enc = i % 2 == 0 ? codec.Encode(k) : EncodeRecord(k, nk, kOwner);
    ASSERT_TRUE(enc.ok());
    recs.push_back(*enc);
  }
  // One codec, reused, also from several threads at once.
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([&] {
      for (uint32_t i = 0; i < recs.size(); ++i) {
        EXPECT_EQ(*codec.Verify(RecordType::kSesKey, recs[i]), i);
        auto via_codec = codec.Decode<SesKey>(recs[i]);
        auto via_free = DecodeRecord<SesKey>(recs[i], nk, kOwner);
        ASSERT_TRUE(via_codec.ok() && via_free.ok());
        EXPECT_EQ(via_codec->n_id, i);
        EXPECT_TRUE(via_codec->nnsk.Equals(via_free->nnsk));
        EXPECT_EQ(via_codec->topic3, via_free->topic3);
      }
    });
  }
  for (auto& t : threads) t.join();
  // The other two record types go through the codec as well.
  GenKey g = SampleGen(true);
  auto g_enc = codec.Encode(g);
  ASSERT_TRUE(g_enc.ok());
  EXPECT_EQ(DecodeRecord<GenKey>(*g_enc, nk, kOwner)->request_id, g.request_id);
  NodeDesc d = SampleNode(true);
  auto d_enc = codec.Encode(d);
  ASSERT_TRUE(d_enc.ok());
  EXPECT_EQ(codec.Decode<NodeDesc>(*d_enc)->n_id, d.n_id);

  Bytes bad = recs[3];
  bad[20] ^= 1;
  EXPECT_EQ(codec.Verify(RecordType::kSesKey, bad).status().code(),
            StatusCode::kDataLoss);
  EXPECT_EQ(codec.Decode<SesKey>(bad).status().code(), StatusCode::kDataLoss);
  EXPECT_EQ(codec.Verify(RecordType::kSesKey, bad).status().code(),
            VerifyRecord(bad, RecordType::kSesKey, nk, kOwner).status().code());
  // Other owner, other NK, other file type, invalid keys.
  EXPECT_FALSE(
      RecordCodec(nk, kOwner + 1).Verify(RecordType::kSesKey, recs[0]).ok());
  EXPECT_FALSE(RecordCodec(nk, kOwner + 1).Decode<SesKey>(recs[0]).ok());
  SymmetricKeys wrong_enc{PatternKeys(2).RawEncKeyBytes().Clone(),
                          nk.RawMacKeyBytes().Clone()};
  EXPECT_EQ(RecordCodec(wrong_enc, kOwner)
                .Verify(RecordType::kSesKey, recs[0])
                .status()
                .code(),
            StatusCode::kDataLoss);
  EXPECT_EQ(codec.Verify(RecordType::kGenKey, recs[0]).status().code(),
            StatusCode::kInvalidArgument);
  SymmetricKeys invalid{SecretBytes(16), SecretBytes(32)};
  const RecordCodec invalid_codec(invalid, kOwner);
  EXPECT_EQ(invalid_codec.Verify(RecordType::kSesKey, recs[0]).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(invalid_codec.Encode(SampleSes(true)).status().code(),
            StatusCode::kInvalidArgument);
}

TEST(Records, UnknownVersionAndTypeRejected) {
  SymmetricKeys nk = PatternKeys(1);
  auto enc = EncodeRecord(SampleSes(true), nk, kOwner);
  ASSERT_TRUE(enc.ok());
  Bytes v = *enc;
  v[0] = 2;
  EXPECT_EQ(DecodeRecord<SesKey>(v, nk, kOwner).status().code(),
            StatusCode::kInvalidArgument);
  Bytes t = *enc;
  t[1] = 9;
  EXPECT_EQ(DecodeRecord<SesKey>(t, nk, kOwner).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(DecodeRecord<SesKey>(Bytes(kMaxRecordSize + 1), nk, kOwner)
                .status()
                .code(),
            StatusCode::kInvalidArgument);
}

TEST(Records, BadFieldsRejectedOnEncode) {
  SymmetricKeys nk = PatternKeys(1);
  NodeDesc d = SampleNode(true);
  d.ntag = SecretBytes(31);
  EXPECT_EQ(EncodeRecord(d, nk, kOwner).status().code(),
            StatusCode::kInvalidArgument);
  d = SampleNode(true);
  d.allowed_peers.assign(kMaxAllowedPeers + 1, 1);
  EXPECT_EQ(EncodeRecord(d, nk, kOwner).status().code(),
            StatusCode::kInvalidArgument);
  d = SampleNode(true);
  d.state = static_cast<NodeState>(9);
  EXPECT_EQ(EncodeRecord(d, nk, kOwner).status().code(),
            StatusCode::kInvalidArgument);
  d = SampleNode(true);
  d.nksk = SymmetricKeys(d.nksk.RawEncKeyBytes().Clone(),
                         SecretBytes());  // half a key pair
  EXPECT_EQ(EncodeRecord(d, nk, kOwner).status().code(),
            StatusCode::kInvalidArgument);
  GenKey g = SampleGen(false);
  g.nnsk = SymmetricKeys();  // gen_keys always holds a key
  EXPECT_EQ(EncodeRecord(g, nk, kOwner).status().code(),
            StatusCode::kInvalidArgument);
  SesKey k = SampleSes(true);
  k.nnsk = SymmetricKeys(SecretBytes(5), k.nnsk.RawMacKeyBytes().Clone());
  EXPECT_EQ(EncodeRecord(k, nk, kOwner).status().code(),
            StatusCode::kInvalidArgument);
}

TEST(Records, SecretsAreNotInClear) {
  SymmetricKeys nk = PatternKeys(1);
  NodeDesc d = SampleNode(true);
  auto enc = EncodeRecord(d, nk, kOwner);
  ASSERT_TRUE(enc.ok());
  auto contains = [&](std::span<const uint8_t> needle) {
    return std::search(enc->begin(), enc->end(), needle.begin(),
                       needle.end()) != enc->end();
  };
  EXPECT_FALSE(contains(d.ntag.span()));
  EXPECT_FALSE(contains(d.nksk.RawEncKeyBytes().span()));
  EXPECT_FALSE(contains(d.nksk.RawMacKeyBytes().span()));
  EXPECT_FALSE(contains(*d.topic2));
}

}  // namespace
}  // namespace kgr
