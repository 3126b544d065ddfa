// The software store's file goes through TpmOptions::fs: its writes can fail
// and crash like every other file, and a failed or lost write never changes
// what the store holds.
#include <memory>

#include "gtest/gtest.h"
#include "kgr/bytes.h"
#include "testing/fake_filesystem.h"
#include "tpm/software_tpm.h"

namespace kgr {
namespace {

using testing::FakeFileSystem;

std::unique_ptr<Tpm> Open(FakeFileSystem& fs) {
  TpmOptions options;
  options.tcti = "none";
  options.state_dir = "/state/tpm";
  options.fs = &fs;
  auto tpm = OpenSoftwareTpm(options);
  EXPECT_TRUE(tpm.ok()) << tpm.status().ToString();
  return tpm.ok() ? std::move(tpm).value() : nullptr;
}

StatusOr<SecretBytes> ReadNtag(Tpm& tpm) { return tpm.NvRead(NvSlot::kNtag); }

TEST(SoftwareTpmFaultsTest, FailedWriteLeavesTheStoreAsItWas) {
  FakeFileSystem fs;
  auto tpm = Open(fs);
  ASSERT_NE(tpm, nullptr);
  Bytes first(32, 1), second(32, 2);
  ASSERT_TRUE(tpm->NvWrite(NvSlot::kNtag, first).ok());
  fs.FailNth(FakeFileSystem::Op::kSync, 1, UnavailableError("disk away"));
  EXPECT_FALSE(tpm->NvWrite(NvSlot::kNtag, second).ok());
  auto now = ReadNtag(*tpm);
  ASSERT_TRUE(now.ok());
  EXPECT_TRUE(now->Equals(SecretBytes(first)));
  fs.ClearFaults();
  auto reopened = Open(fs);
  ASSERT_NE(reopened, nullptr);
  auto after = ReadNtag(*reopened);
  ASSERT_TRUE(after.ok()) << after.status().ToString();
  EXPECT_TRUE(after->Equals(SecretBytes(first)));
}

TEST(SoftwareTpmFaultsTest, AWriteSurvivesAPowerLossOnceItReturned) {
  FakeFileSystem fs;
  auto tpm = Open(fs);
  ASSERT_NE(tpm, nullptr);
  Bytes ntag(32, 7);
  ASSERT_TRUE(tpm->NvWrite(NvSlot::kNtag, ntag).ok());
  tpm.reset();
  fs.Crash();  // unsynced data is lost: the write must have been durable
  auto reopened = Open(fs);
  ASSERT_NE(reopened, nullptr);
  auto after = ReadNtag(*reopened);
  ASSERT_TRUE(after.ok()) << after.status().ToString();
  EXPECT_TRUE(after->Equals(SecretBytes(ntag)));
}

TEST(SoftwareTpmFaultsTest, AFullDiskIsReportedAndChangesNothing) {
  FakeFileSystem fs;
  auto tpm = Open(fs);
  ASSERT_NE(tpm, nullptr);
  fs.SetCapacity(16);
  Status st = tpm->NvWrite(NvSlot::kNtag, Bytes(32, 9));
  EXPECT_EQ(st.code(), StatusCode::kResourceExhausted) << st.ToString();
  EXPECT_FALSE(ReadNtag(*tpm).ok());
}

}  // namespace
}  // namespace kgr
