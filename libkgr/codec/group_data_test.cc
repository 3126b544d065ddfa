#include <gtest/gtest.h>

#include "kgr/group_frame.h"

namespace kgr {
namespace {

SecretBytes Pattern(uint8_t start, size_t n) {
  SecretBytes s(n);
  for (size_t i = 0; i < n; ++i) s.data()[i] = static_cast<uint8_t>(start + i);
  return s;
}

FrameHeader Header(uint32_t sender, uint64_t counter) {
  FrameHeader h;
  h.type = FrameType::kGroupData;
  h.sender = sender;
  h.key_version = 3;
  h.counter = counter;
  h.request_id = 77;
  return h;
}

class GroupDataTest : public ::testing::Test {
 protected:
  void SetUp() override {
    keys_ = GroupDataKeys(Pattern(1, 32), kGroup, 3).value();
    alice_ = GenerateEd25519().value();
    mallory_ = GenerateEd25519().value();
  }
  static constexpr uint32_t kGroup = 0x0a0b0c0d;
  SymmetricKeys keys_;
  Ed25519KeyPair alice_, mallory_;
  const Bytes data_ = {'h', 'e', 'l', 'l', 'o'};
};

TEST_F(GroupDataTest, GroupKeyModeRoundTrip) {
  Bytes frame = SealGroupData(Header(1, 10), kGroup, GroupMode::kGroupKey,
                              data_, keys_, nullptr)
                    .value();
  FrameHeader h;
  auto g = OpenGroupData(frame, keys_, kGroup, GroupMode::kGroupKey, {}, &h);
  ASSERT_TRUE(g.ok()) << g.status().message();
  EXPECT_EQ(h.sender, 1u);
  EXPECT_EQ(h.counter, 10u);
  EXPECT_EQ(Bytes(g->data.span().begin(), g->data.span().end()), data_);
  EXPECT_TRUE(g->signature.empty());
}

TEST_F(GroupDataTest, SenderAuthVerifiesTheSendersKeyOnly) {
  Bytes frame = SealGroupData(Header(1, 10), kGroup, GroupMode::kSenderAuth,
                              data_, keys_, &alice_.private_key)
                    .value();
  FrameHeader h;
  EXPECT_TRUE(OpenGroupData(frame, keys_, kGroup, GroupMode::kSenderAuth,
                            alice_.public_key, &h)
                  .ok());
  // Mallory, a member, signs with her own key but claims to be alice (1).
  Bytes forged = SealGroupData(Header(1, 11), kGroup, GroupMode::kSenderAuth,
                               data_, keys_, &mallory_.private_key)
                     .value();
  auto r = OpenGroupData(forged, keys_, kGroup, GroupMode::kSenderAuth,
                         alice_.public_key, &h);
  EXPECT_EQ(r.status().code(), StatusCode::kUnauthenticated);
}

TEST_F(GroupDataTest, ModeAndGroupMustMatch) {
  Bytes plain = SealGroupData(Header(1, 10), kGroup, GroupMode::kGroupKey,
                              data_, keys_, nullptr)
                    .value();
  FrameHeader h;
  // An unsigned message in a sender_auth group is refused.
  EXPECT_EQ(OpenGroupData(plain, keys_, kGroup, GroupMode::kSenderAuth,
                          alice_.public_key, &h)
                .status()
                .code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(
      OpenGroupData(plain, keys_, kGroup + 1, GroupMode::kGroupKey, {}, &h)
          .status()
          .code(),
      StatusCode::kInvalidArgument);
}

TEST_F(GroupDataTest, KeysDependOnGroupAndVersion) {
  Bytes frame = SealGroupData(Header(1, 10), kGroup, GroupMode::kGroupKey,
                              data_, keys_, nullptr)
                    .value();
  FrameHeader h;
  SymmetricKeys v4 = GroupDataKeys(Pattern(1, 32), kGroup, 4).value();
  SymmetricKeys other = GroupDataKeys(Pattern(1, 32), kGroup + 1, 3).value();
  EXPECT_EQ(OpenGroupData(frame, v4, kGroup, GroupMode::kGroupKey, {}, &h)
                .status()
                .code(),
            StatusCode::kUnauthenticated);
  EXPECT_EQ(OpenGroupData(frame, other, kGroup, GroupMode::kGroupKey, {}, &h)
                .status()
                .code(),
            StatusCode::kUnauthenticated);
}

TEST_F(GroupDataTest, TamperedSignedFieldsFail) {
  // A signature copied onto another counter (re-sealed by a member who
  // holds the group key) no longer verifies.
  Bytes frame = SealGroupData(Header(1, 10), kGroup, GroupMode::kSenderAuth,
                              data_, keys_, &alice_.private_key)
                    .value();
  FrameHeader h;
  GroupData body = OpenGroupData(frame, keys_, kGroup, GroupMode::kSenderAuth,
                                 alice_.public_key, &h)
                       .value();
  Bytes plain;
  body.EncodeTo(&plain);
  Bytes replayed = SealFrame(Header(1, 99), plain, keys_).value();
  EXPECT_EQ(OpenGroupData(replayed, keys_, kGroup, GroupMode::kSenderAuth,
                          alice_.public_key, &h)
                .status()
                .code(),
            StatusCode::kUnauthenticated);
}

TEST(GroupDataParse, RefusesBadBodies) {
  EXPECT_FALSE(GroupData::Parse(Bytes{0, 0, 0, 1}).ok());        // short
  EXPECT_FALSE(GroupData::Parse(Bytes{0, 0, 0, 1, 2}).ok());     // mode 2
  EXPECT_FALSE(GroupData::Parse(Bytes{0, 0, 0, 0, 0}).ok());     // group 0
  EXPECT_FALSE(GroupData::Parse(Bytes{0, 0, 0, 1, 1, 9}).ok());  // no sig
  EXPECT_TRUE(GroupData::Parse(Bytes{0, 0, 0, 1, 0}).ok());      // empty data
  Bytes big(5 + kMaxGroupDataSize + 1, 0);
  big[3] = 1;
  EXPECT_FALSE(GroupData::Parse(big).ok());
}

}  // namespace
}  // namespace kgr
