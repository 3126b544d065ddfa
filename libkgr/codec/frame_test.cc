#include "kgr/frame.h"

#include <gtest/gtest.h>

#include <functional>

namespace kgr {
namespace {

SymmetricKeys TestKeys(uint8_t seed) {
  SecretBytes enc(kKeySize), mac(kKeySize);
  for (size_t i = 0; i < kKeySize; ++i) {
    enc.data()[i] = static_cast<uint8_t>(seed + i);
    mac.data()[i] = static_cast<uint8_t>(seed * 3 + i);
  }
  return {std::move(enc), std::move(mac)};
}

TopicId T(uint8_t b) {
  TopicId t;
  t.fill(b);
  return t;
}

FrameHeader Header() {
  FrameHeader h;
  h.sender = 0x0a0b0c0d;
  h.key_version = 3;
  h.counter = 1000;
  h.request_id = 0x1122334455667788;
  return h;
}

// One sealed sample of every node frame type.
std::vector<Bytes> AllSealedFrames(const SymmetricKeys& k) {
  std::vector<Bytes> out;
  auto add = [&](auto body) {
    auto f = SealBody(Header(), body, k);
    EXPECT_TRUE(f.ok()) << f.status().ToString();
    out.push_back(*f);
  };
  add(NkskKeyReq{7, SecretBytes(kNtagSize), T(1)});
  add(NkskKeyAns{TestKeys(9), T(2)});
  add(NnskKeyReq{8, 1, T(3)});
  add(NnskKeyAns{7, 8, 1, TestKeys(11)});
  add(NnskNotReq{7, 1, TestKeys(12), T(4)});
  add(NnskNotAns{7, 8, T(5)});
  add(NnskConfReq{7, 8, T(6)});
  add(NnskConfAns{8});
  add(KsError{FrameType::kNnskKeyReq, KsErrorCode::kPairNotAllowed});
  add(PairRevoked{8, RevokeReason::kPairWithdrawn});
  add(NkskRotReq{Bytes(32, 7)});
  add(NkskRotAns{Bytes(32, 9), 2});
  add(NkskRotSig{});
  add(CertRenewReq{Bytes(300, 0x30)});
  add(CertRenewAns{"-----BEGIN CERTIFICATE-----\n..."});
  add(NodeDataReq{8, SecretBytes(AsBytes("hello world!"))});
  add(NodeDataAns{8, SecretBytes(AsBytes("ok"))});
  return out;
}

TEST(Frame, EveryTypeRoundTrips) {
  auto k = TestKeys(1);
  for (const Bytes& f : AllSealedFrames(k)) {
    FrameHeader h;
    auto body = OpenFrame(f, k, &h);
    ASSERT_TRUE(body.ok()) << body.status().ToString();
    EXPECT_EQ(h.sender, 0x0a0b0c0du);
    EXPECT_EQ(h.key_version, 3u);
    EXPECT_EQ(h.counter, 1000u);
    EXPECT_EQ(h.request_id, 0x1122334455667788u);
    EXPECT_EQ(f.size(), kFrameOverhead + h.body_len);
  }
}

TEST(Frame, BodiesParseBackToTheSameFields) {
  auto k = TestKeys(1);
  FrameHeader h;
  auto f = SealBody(Header(), NnskNotReq{7, 5, TestKeys(12), T(4)}, k);
  ASSERT_TRUE(f.ok());
  auto m = OpenBody<NnskNotReq>(*f, k, &h);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(m->n_id1, 7u);
  EXPECT_EQ(m->version, 5u);
  EXPECT_TRUE(m->nnsk.RawEncKeyBytes().Equals(TestKeys(12).RawEncKeyBytes()));
  EXPECT_TRUE(m->nnsk.RawMacKeyBytes().Equals(TestKeys(12).RawMacKeyBytes()));
  EXPECT_EQ(m->topic3, T(4));
  // Asking for the wrong body type is refused.
  EXPECT_FALSE(OpenBody<NnskKeyAns>(*f, k, &h).ok());
}

TEST(Frame, EverySingleBitFlipIsRejected) {
  auto k = TestKeys(1);
  for (const Bytes& f : AllSealedFrames(k)) {
    for (size_t bit = 0; bit < f.size() * 8; ++bit) {
      Bytes bad = f;
      bad[bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
      FrameHeader h;
      auto r = OpenFrame(bad, k, &h);
      ASSERT_FALSE(r.ok()) << "bit " << bit;
      EXPECT_TRUE(r.status().code() == StatusCode::kUnauthenticated ||
                  r.status().code() == StatusCode::kInvalidArgument);
    }
  }
}

TEST(Frame, EveryTruncationAndExtensionIsRejected) {
  auto k = TestKeys(1);
  for (const Bytes& f : AllSealedFrames(k)) {
    for (size_t len = 0; len < f.size(); ++len) {
      FrameHeader h;
      Bytes cut(f.begin(), f.begin() + len);
      EXPECT_FALSE(OpenFrame(cut, k, &h).ok()) << "len " << len;
    }
    Bytes longer = f;
    longer.push_back(0);
    FrameHeader h;
    auto r = OpenFrame(longer, k, &h);
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  }
}

TEST(Frame, WrongKeysAreRejectedWithTheGenericMessage) {
  auto k = TestKeys(1);
  auto other = TestKeys(2);
  for (const Bytes& f : AllSealedFrames(k)) {
    FrameHeader h;
    auto r = OpenFrame(f, other, &h);
    EXPECT_EQ(r.status().code(), StatusCode::kUnauthenticated);
    EXPECT_EQ(r.status().message(), kVerificationFailed);
  }
}

TEST(Frame, UnknownVersionTypeAndFlagsAreRejected) {
  auto k = TestKeys(1);
  Bytes f = AllSealedFrames(k)[0];
  Bytes v = f;
  v[0] = 2;
  EXPECT_NE(PeekFrameHeader(v).status().message().find("version"),
            std::string::npos);
  Bytes t = f;
  t[1] = 0x7f;
  EXPECT_NE(PeekFrameHeader(t).status().message().find("type"),
            std::string::npos);
  Bytes fl = f;
  fl[2] = 0x80;
  EXPECT_EQ(PeekFrameHeader(fl).status().code(), StatusCode::kInvalidArgument);
  FrameHeader bad = Header();
  bad.flags = 0x40;
  EXPECT_FALSE(SealFrame(bad, {}, k).ok());
}

TEST(Frame, BodyParsersRejectTrailingAndShortInput) {
  Bytes b;
  NnskConfAns{5}.EncodeTo(&b);
  EXPECT_TRUE(NnskConfAns::Parse(b).ok());
  b.push_back(0);
  EXPECT_NE(NnskConfAns::Parse(b).status().message().find("trailing"),
            std::string::npos);
  b.resize(3);
  EXPECT_NE(NnskConfAns::Parse(b).status().message().find("truncated"),
            std::string::npos);
  // Data over its bound.
  Bytes big;
  NodeDataReq{1, SecretBytes(kMaxDataSize + 1)}.EncodeTo(&big);
  EXPECT_NE(NodeDataReq::Parse(big).status().message().find("bound"),
            std::string::npos);
  // A peer count beyond the input is refused before allocation.
  Bytes ids = {0xff, 0xff};
  EXPECT_FALSE(AcAuthorizeReq::Parse(ids).ok());
  Bytes list = {0, 0, 0xff, 0xff, 0xff, 0xff};
  EXPECT_FALSE(AcListAns::Parse(list).ok());
  Bytes bad_more = {0, 2, 0, 0, 0, 0};
  EXPECT_FALSE(AcListAns::Parse(bad_more).ok());
  EXPECT_FALSE(AcListReq::Parse(Bytes{}).ok());
  EXPECT_FALSE(AcListReq::Parse(Bytes{0, 0, 0, 1, 0}).ok());
}

TEST(Frame, AcFramesAreClearFramesOnly) {
  FrameHeader h = Header();
  h.type = FrameType::kAcPeersReq;
  Bytes body;
  AcPeersReq{9, 1, {1, 2, 3}}.EncodeTo(&body);
  auto clear = EncodeClearFrame(h, body);
  ASSERT_TRUE(clear.ok());
  FrameHeader got;
  auto view = DecodeClearFrame(*clear, &got);
  ASSERT_TRUE(view.ok());
  auto req = AcPeersReq::Parse(*view);
  ASSERT_TRUE(req.ok());
  EXPECT_EQ(req->peers, (std::vector<uint32_t>{1, 2, 3}));
  EXPECT_FALSE(SealFrame(h, body, TestKeys(1)).ok());
  h.type = FrameType::kNnskConfAns;
  EXPECT_FALSE(EncodeClearFrame(h, body).ok());
  for (size_t len = 0; len < clear->size(); ++len) {
    Bytes cut(clear->begin(), clear->begin() + len);
    EXPECT_FALSE(DecodeClearFrame(cut, &got).ok());
  }
}

TEST(Frame, AcListRoundTrip) {
  AcListAns a;
  a.more = 1;
  a.nodes.push_back({1, 2, 3, {4, 5}});
  a.nodes.push_back({6, 1, 7, {}});
  Bytes b;
  a.EncodeTo(&b);
  size_t expect = AcListAns::kHeaderSize;
  for (const auto& e : a.nodes) expect += AcListAns::EntrySize(e);
  EXPECT_EQ(b.size(), expect);
  auto p = AcListAns::Parse(b);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(p->more, 1);
  ASSERT_EQ(p->nodes.size(), 2u);
  EXPECT_EQ(p->nodes[0].peers, (std::vector<uint32_t>{4, 5}));
  EXPECT_EQ(p->nodes[1].entry_no, 7);
  Bytes req;
  AcListReq{0x01020304}.EncodeTo(&req);
  auto r = AcListReq::Parse(req);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->after, 0x01020304u);
}

TEST(Registration, KeysDifferPerDirectionAndNode) {
  SecretBytes ntag(kNtagSize);
  ntag.data()[0] = 1;
  auto req = RegistrationKeys(ntag, 1, FrameType::kNkskKeyReq);
  auto ans = RegistrationKeys(ntag, 1, FrameType::kNkskKeyAns);
  auto other = RegistrationKeys(ntag, 2, FrameType::kNkskKeyReq);
  ASSERT_TRUE(req.ok() && ans.ok() && other.ok());
  EXPECT_FALSE(req->RawEncKeyBytes().Equals(ans->RawEncKeyBytes()));
  EXPECT_FALSE(req->RawMacKeyBytes().Equals(req->RawEncKeyBytes()));
  EXPECT_FALSE(req->RawEncKeyBytes().Equals(other->RawEncKeyBytes()));
  EXPECT_FALSE(RegistrationKeys(ntag, 1, FrameType::kNnskKeyReq).ok());
}

TEST(Registration, NtagIsSha256OfIdKedkAndEntry) {
  Bytes kedk = {1, 2, 3};
  Bytes salt = {9, 9};
  SecretBytes ntag = ComputeNtag(0x01020304, kedk, 0x0506, salt);
  Bytes expect_in = {1, 2, 3, 4, 1, 2, 3, 5, 6, 9, 9};
  Digest d = Sha256({expect_in});
  EXPECT_TRUE(ConstantTimeEquals(ntag.span(), d));
}

TEST(ReplayWindow, AcceptsNewRejectsSeenAndOld) {
  ReplayWindow w;
  EXPECT_FALSE(w.IsFresh(0));
  EXPECT_TRUE(w.IsFresh(10));
  w.Accept(10);
  EXPECT_FALSE(w.IsFresh(10));
  EXPECT_TRUE(w.IsFresh(9));  // reordered but unseen
  w.Accept(9);
  EXPECT_FALSE(w.IsFresh(9));
  w.Accept(100);
  EXPECT_TRUE(w.IsFresh(99));
  EXPECT_FALSE(w.IsFresh(36));  // fell out of the window
  EXPECT_FALSE(w.IsFresh(10));
}

TEST(ReplayWindow, RestoredWindowTreatsEverythingBelowAsSeen) {
  ReplayWindow w(500);
  EXPECT_FALSE(w.IsFresh(499));
  EXPECT_FALSE(w.IsFresh(500));
  EXPECT_TRUE(w.IsFresh(501));
  w.Accept(503);
  EXPECT_TRUE(w.IsFresh(502));
  EXPECT_FALSE(w.IsFresh(500));
}

TEST(FrameCounter, StrictlyIncreasingAndAtLeastTime) {
  FrameCounter c(100);
  EXPECT_EQ(c.Next(50), 101u);
  EXPECT_EQ(c.Next(50), 102u);
  EXPECT_EQ(c.Next(5000), 5000u);
  EXPECT_EQ(c.Next(4000), 5001u);
}

TEST(Topic, NamesAndPrefixes) {
  TopicId id{};
  EXPECT_EQ(Base32(id), "aaaaaaaaaaaaaaaa");
  id.fill(0xff);
  EXPECT_EQ(Base32(id), "7777777777777777");
  EXPECT_EQ(TopicName("kgr", NodeIdentity(0xa), id),
            "kgr/n0000000a/7777777777777777");
  EXPECT_EQ(FormatNodeId(0), "00000000");
  EXPECT_EQ(FormatNodeId(0x0123abcd), "0123abcd");
  EXPECT_EQ(FormatNodeId(0xfedc9876), "fedc9876");
  EXPECT_EQ(FormatNodeId(0xffffffff), "ffffffff");
  EXPECT_EQ(RegisterTopic("kgr"), "kgr/register");
  EXPECT_TRUE(ValidateTopicPrefix("kgr/site-1").ok());
  EXPECT_FALSE(ValidateTopicPrefix("kgr/#").ok());
  EXPECT_FALSE(ValidateTopicPrefix("/kgr").ok());
  EXPECT_FALSE(ValidateTopicPrefix("kgr//a").ok());
  EXPECT_FALSE(ValidateTopicPrefix("").ok());
}

}  // namespace
}  // namespace kgr

namespace kgr {
namespace {

TEST(CertRenewBodies, RoundTripAndBounds) {
  Bytes body;
  CertRenewReq{Bytes(kMaxCsrSize, 0x30)}.EncodeTo(&body);
  auto req = CertRenewReq::Parse(body);
  ASSERT_TRUE(req.ok());
  EXPECT_EQ(req->csr_der, Bytes(kMaxCsrSize, 0x30));
  body.push_back(0);  // one byte over the bound
  EXPECT_NE(CertRenewReq::Parse(body).status().message().find("bound"),
            std::string::npos);
  EXPECT_FALSE(CertRenewReq::Parse({}).ok());  // an empty CSR

  std::string chain(kMaxCertChainSize, 'A');
  body.clear();
  CertRenewAns{chain}.EncodeTo(&body);
  auto ans = CertRenewAns::Parse(body);
  ASSERT_TRUE(ans.ok());
  EXPECT_EQ(ans->chain_pem, chain);
  body.push_back('A');
  EXPECT_FALSE(CertRenewAns::Parse(body).ok());
  EXPECT_FALSE(CertRenewAns::Parse({}).ok());
}

TEST(CertRenewBodies, KsErrorCarriesTheCertificateRefusal) {
  Bytes body;
  KsError{FrameType::kCertRenewReq, KsErrorCode::kCertificateRefused}.EncodeTo(
      &body);
  EXPECT_EQ(body, (Bytes{0x0E, 6}));
  auto e = KsError::Parse(body);
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->refused_type, FrameType::kCertRenewReq);
  EXPECT_EQ(e->code, KsErrorCode::kCertificateRefused);
  EXPECT_EQ(FrameTypeName(FrameType::kCertRenewAns), "cert_renew_ans");
  EXPECT_FALSE(KsError::Parse(Bytes{0x0E, 7}).ok());
}

}  // namespace
}  // namespace kgr
