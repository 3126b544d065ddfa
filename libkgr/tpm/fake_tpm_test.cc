#include "testing/fake_tpm.h"

#include "gtest/gtest.h"

namespace kgr::testing {
namespace {

TEST(FakeTpm, RoundTripAndCounting) {
  FakeTpm tpm;
  EXPECT_EQ(tpm.kind(), "fake");
  EXPECT_EQ(tpm.NvRead(NvSlot::kNtag).status().code(), StatusCode::kNotFound);
  Bytes data(32, 0xAB);
  ASSERT_TRUE(tpm.NvWrite(NvSlot::kNtag, data).ok());
  EXPECT_EQ(tpm.counters().nv_writes, 2u);
  ASSERT_TRUE(tpm.NvWrite(NvSlot::kNtag, data).ok());
  EXPECT_EQ(tpm.counters().nv_writes, 3u);
  auto got = tpm.NvRead(NvSlot::kNtag);
  ASSERT_TRUE(got.ok());
  EXPECT_TRUE(ConstantTimeEquals(got->span(), data));
  EXPECT_TRUE(tpm.HasSlot(NvSlot::kNtag));
  EXPECT_EQ(tpm.counters().tpm_commands, 4u);
}

TEST(FakeTpm, OversizeRefused) {
  FakeTpm tpm;
  Bytes big(kNvSlotMaxSize + 1);
  EXPECT_EQ(tpm.NvWrite(NvSlot::kIdentity, big).code(),
            StatusCode::kInvalidArgument);
  EXPECT_FALSE(tpm.HasSlot(NvSlot::kIdentity));
}

TEST(FakeTpm, OneShotFailures) {
  FakeTpm tpm;
  tpm.FailNextNvWrite(ResourceExhaustedError("NV worn out"));
  Bytes data(8, 1);
  EXPECT_EQ(tpm.NvWrite(NvSlot::kNodeKeys, data).code(),
            StatusCode::kResourceExhausted);
  EXPECT_FALSE(tpm.HasSlot(NvSlot::kNodeKeys));
  EXPECT_EQ(tpm.counters().nv_writes, 0u);
  EXPECT_TRUE(tpm.NvWrite(NvSlot::kNodeKeys, data).ok());

  tpm.FailNextNvRead(UnavailableError("bus"));
  EXPECT_EQ(tpm.NvRead(NvSlot::kNodeKeys).status().code(),
            StatusCode::kUnavailable);
  EXPECT_TRUE(tpm.NvRead(NvSlot::kNodeKeys).ok());

  tpm.FailNextEnsure(InternalError("x"));
  EXPECT_FALSE(tpm.EnsureTrustStructure(true).ok());
  EXPECT_FALSE(tpm.has_structure());
  EXPECT_TRUE(tpm.EnsureTrustStructure(true).ok());
  EXPECT_TRUE(tpm.has_kedk());

  tpm.FailNextGetRandom(UnavailableError("rng"));
  EXPECT_FALSE(tpm.GetRandom(4).ok());
  EXPECT_TRUE(tpm.GetRandom(4).ok());

  tpm.FailNextNvErase(InternalError("erase"));
  EXPECT_FALSE(tpm.NvErase(NvSlot::kNodeKeys).ok());
  EXPECT_TRUE(tpm.HasSlot(NvSlot::kNodeKeys));
  EXPECT_TRUE(tpm.NvErase(NvSlot::kNodeKeys).ok());
  EXPECT_FALSE(tpm.HasSlot(NvSlot::kNodeKeys));
}

TEST(FakeTpm, StickyWriteFailure) {
  FakeTpm tpm;
  tpm.FailAllNvWrites(ResourceExhaustedError("full"));
  Bytes data(4, 2);
  EXPECT_FALSE(tpm.NvWrite(NvSlot::kIdentity, data).ok());
  EXPECT_FALSE(tpm.NvWrite(NvSlot::kIdentity, data).ok());
  tpm.FailAllNvWrites(std::nullopt);
  EXPECT_TRUE(tpm.NvWrite(NvSlot::kIdentity, data).ok());
}

TEST(FakeTpm, SharedStateSurvivesRestart) {
  auto state = std::make_shared<FakeTpm::State>();
  Bytes kedk;
  {
    FakeTpm tpm(state);
    ASSERT_TRUE(tpm.EnsureTrustStructure(true).ok());
    kedk = *tpm.KedkPublic();
    ASSERT_TRUE(tpm.NvWrite(NvSlot::kKsKeys, Bytes(64, 5)).ok());
  }
  FakeTpm tpm(state);
  EXPECT_EQ(*tpm.KedkPublic(), kedk);
  EXPECT_TRUE(tpm.NvRead(NvSlot::kKsKeys).ok());
  EXPECT_EQ(state->ensure_calls, 1);
}

TEST(FakeTpm, KedkPublicNeedsStructure) {
  FakeTpm tpm;
  EXPECT_EQ(tpm.KedkPublic().status().code(), StatusCode::kFailedPrecondition);
  ASSERT_TRUE(tpm.EnsureTrustStructure(false).ok());
  EXPECT_EQ(tpm.KedkPublic().status().code(), StatusCode::kFailedPrecondition);
}

TEST(FakeTpm, CountingRandom) {
  FakeTpm tpm;
  tpm.UseCountingRandom(250);
  auto r = tpm.GetRandom(8);
  ASSERT_TRUE(r.ok());
  const uint8_t want[] = {250, 251, 252, 253, 254, 255, 0, 1};
  EXPECT_TRUE(ConstantTimeEquals(r->span(), want));
}

TEST(FakeTpm, SetSlotDoesNotCount) {
  FakeTpm tpm;
  tpm.SetSlot(NvSlot::kIdentity, Bytes(3, 1));
  EXPECT_EQ(tpm.counters().nv_writes, 0u);
  EXPECT_TRUE(tpm.SlotData(NvSlot::kIdentity).Equals(SecretBytes(Bytes(3, 1))));
}

}  // namespace
}  // namespace kgr::testing
