#include "tpm/software_tpm.h"

#include <sys/stat.h>

#include <fstream>
#include <iterator>
#include <string>

#include "gtest/gtest.h"
#include "kgr/bytes.h"
#include "tpm/test_util.h"
#include "tpm/tpm_layout.h"

namespace kgr {
namespace {

class SoftwareTpmTest : public ::testing::Test {
 protected:
  std::unique_ptr<Tpm> Open() {
    TpmOptions options;
    options.tcti = "none";
    options.state_dir = dir_.path();
    auto tpm = OpenSoftwareTpm(options);
    EXPECT_TRUE(tpm.ok()) << tpm.status().ToString();
    return tpm.ok() ? std::move(tpm).value() : nullptr;
  }
  std::string StorePath() const {
    return dir_.path() + "/" + tpm_layout::kSoftwareStoreFile;
  }

  tpm_test::TempDir dir_;
};

Bytes Pattern(size_t n, uint8_t seed) {
  Bytes b(n);
  for (size_t i = 0; i < n; ++i) b[i] = static_cast<uint8_t>(seed + i);
  return b;
}

TEST_F(SoftwareTpmTest, RoundTripEverySlotAcrossReopen) {
  {
    auto tpm = Open();
    ASSERT_NE(tpm, nullptr);
    EXPECT_EQ(tpm->kind(), "software");
    for (int i = 0; i < kNvSlotCount; ++i) {
      auto slot = static_cast<NvSlot>(i);
      EXPECT_EQ(tpm->NvRead(slot).status().code(), StatusCode::kNotFound);
      ASSERT_TRUE(tpm->NvWrite(slot, Pattern(32 + i * 70, i)).ok());
    }
    // The largest blob fits; an empty one too.
    ASSERT_TRUE(
        tpm->NvWrite(NvSlot::kIdentity, Pattern(kNvSlotMaxSize, 7)).ok());
  }
  auto tpm = Open();
  ASSERT_NE(tpm, nullptr);
  for (int i = 1; i < kNvSlotCount; ++i) {
    auto got = tpm->NvRead(static_cast<NvSlot>(i));
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    Bytes want = Pattern(32 + i * 70, i);
    EXPECT_TRUE(ConstantTimeEquals(got->span(), want));
  }
  auto identity = tpm->NvRead(NvSlot::kIdentity);
  ASSERT_TRUE(identity.ok());
  EXPECT_TRUE(ConstantTimeEquals(identity->span(), Pattern(kNvSlotMaxSize, 7)));
}

TEST_F(SoftwareTpmTest, FileIsMode0600) {
  auto tpm = Open();
  ASSERT_NE(tpm, nullptr);
  ASSERT_TRUE(tpm->NvWrite(NvSlot::kNtag, Pattern(32, 1)).ok());
  struct stat st;
  ASSERT_EQ(::stat(StorePath().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  // No temporary is left behind.
  EXPECT_NE(::stat((StorePath() + ".tmp").c_str(), &st), 0);
}

TEST_F(SoftwareTpmTest, OversizeRefused) {
  auto tpm = Open();
  ASSERT_NE(tpm, nullptr);
  Status s = tpm->NvWrite(NvSlot::kIdentity, Pattern(kNvSlotMaxSize + 1, 0));
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(tpm->NvRead(NvSlot::kIdentity).status().code(),
            StatusCode::kNotFound);
  EXPECT_EQ(tpm->counters().nv_writes, 0u);
  EXPECT_EQ(
      tpm->NvWrite(static_cast<NvSlot>(kNvSlotCount), Pattern(1, 0)).code(),
      StatusCode::kInvalidArgument);
}

TEST_F(SoftwareTpmTest, CountsNvWritesLikeTheTpm) {
  auto tpm = Open();
  ASSERT_NE(tpm, nullptr);
  ASSERT_TRUE(tpm->EnsureTrustStructure(true).ok());
  EXPECT_EQ(tpm->counters().nv_writes, 0u);
  ASSERT_TRUE(tpm->NvWrite(NvSlot::kNodeKeys, Pattern(64, 0)).ok());
  EXPECT_EQ(tpm->counters().nv_writes, 2u);  // define + write
  ASSERT_TRUE(tpm->NvWrite(NvSlot::kNodeKeys, Pattern(64, 1)).ok());
  EXPECT_EQ(tpm->counters().nv_writes, 3u);
  EXPECT_EQ(tpm->counters().tpm_commands, 0u);
}

TEST_F(SoftwareTpmTest, KedkStableAndOnlyWhenAsked) {
  Bytes first;
  {
    auto tpm = Open();
    ASSERT_NE(tpm, nullptr);
    EXPECT_EQ(tpm->KedkPublic().status().code(),
              StatusCode::kFailedPrecondition);
    ASSERT_TRUE(tpm->EnsureTrustStructure(false).ok());
    EXPECT_EQ(tpm->KedkPublic().status().code(),
              StatusCode::kFailedPrecondition);
    ASSERT_TRUE(tpm->EnsureTrustStructure(true).ok());
    auto kedk = tpm->KedkPublic();
    ASSERT_TRUE(kedk.ok());
    first = *kedk;
    EXPECT_EQ(first.size(), 65u);
    EXPECT_EQ(first[0], 0x04);
    ASSERT_TRUE(tpm->EnsureTrustStructure(true).ok());
    EXPECT_EQ(*tpm->KedkPublic(), first);
  }
  auto tpm = Open();
  ASSERT_NE(tpm, nullptr);
  ASSERT_TRUE(tpm->EnsureTrustStructure(true).ok());
  EXPECT_EQ(*tpm->KedkPublic(), first);
}

TEST_F(SoftwareTpmTest, EraseThenNotFound) {
  auto tpm = Open();
  ASSERT_NE(tpm, nullptr);
  EXPECT_TRUE(tpm->NvErase(NvSlot::kKsKeys).ok());  // absent: OK
  ASSERT_TRUE(tpm->NvWrite(NvSlot::kKsKeys, Pattern(64, 3)).ok());
  ASSERT_TRUE(tpm->NvErase(NvSlot::kKsKeys).ok());
  EXPECT_EQ(tpm->NvRead(NvSlot::kKsKeys).status().code(),
            StatusCode::kNotFound);
  tpm = Open();
  EXPECT_EQ(tpm->NvRead(NvSlot::kKsKeys).status().code(),
            StatusCode::kNotFound);
}

TEST_F(SoftwareTpmTest, CorruptFileIsDataLoss) {
  {
    auto tpm = Open();
    ASSERT_NE(tpm, nullptr);
    ASSERT_TRUE(tpm->NvWrite(NvSlot::kNtag, Pattern(32, 9)).ok());
  }
  std::string content;
  {
    std::ifstream in(StorePath(), std::ios::binary);
    content.assign(std::istreambuf_iterator<char>(in), {});
  }
  ASSERT_GT(content.size(), 20u);
  content[12] ^= 1;
  {
    std::ofstream out(StorePath(), std::ios::binary | std::ios::trunc);
    out << content;
  }
  TpmOptions options;
  options.tcti = "none";
  options.state_dir = dir_.path();
  EXPECT_EQ(OpenSoftwareTpm(options).status().code(), StatusCode::kDataLoss);
}

TEST_F(SoftwareTpmTest, PcrPolicyRefused) {
  TpmOptions options;
  options.tcti = "none";
  options.state_dir = dir_.path();
  options.pcr_policy = true;
  EXPECT_EQ(OpenSoftwareTpm(options).status().code(),
            StatusCode::kFailedPrecondition);
}

TEST_F(SoftwareTpmTest, GetRandom) {
  auto tpm = Open();
  ASSERT_NE(tpm, nullptr);
  auto a = tpm->GetRandom(100);
  auto b = tpm->GetRandom(100);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->size(), 100u);
  EXPECT_FALSE(a->Equals(*b));
}

// Decommissioning: RemoveKeys forgets the trust structure and the KEDK,
// durably; Capabilities says there is no TPM and counts what kgr holds.
TEST_F(SoftwareTpmTest, RemoveKeysAndCapabilities) {
  {
    auto tpm = Open();
    ASSERT_NE(tpm, nullptr);
    ASSERT_TRUE(tpm->EnsureTrustStructure(/*with_kedk=*/true).ok());
    ASSERT_TRUE(tpm->NvWrite(NvSlot::kNtag, Pattern(32, 1)).ok());
    auto caps = tpm->Capabilities();
    ASSERT_TRUE(caps.ok());
    EXPECT_FALSE(caps->is_tpm);
    EXPECT_EQ(caps->kgr_persistent, 3);
    EXPECT_EQ(caps->kgr_nv_slots, 1);
    ASSERT_TRUE(tpm->RemoveKeys().ok());
    ASSERT_TRUE(tpm->RemoveKeys().ok());
  }
  auto tpm = Open();
  ASSERT_NE(tpm, nullptr);
  EXPECT_EQ(tpm->KedkPublic().status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(tpm->Capabilities()->kgr_persistent, 0);
}

}  // namespace
}  // namespace kgr
