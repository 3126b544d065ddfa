// The journal (journal.cc): unsynced writes, damaged or torn entries,
// preallocated space.

#include <gtest/gtest.h>

#include <atomic>
#include <optional>
#include <thread>

#include "store/store_test_util.h"

namespace kgr::store_test {
namespace {

// Unsynced writes wait unsealed: Get reads them at once, a later write of
// the same key replaces them (one journal entry, not two), and whatever
// still waits goes out ahead of the next synced write.
TEST(StoreUnsynced, WaitingWriteIsReadAndReplacedWithoutAnEntry) {
  FakeFileSystem fs;
  auto s = OpenOrDie(fs);
  ASSERT_TRUE(s->Put(Ses(1, 1)).ok());
  const uint64_t entries = s->file().journal_entries();
  s->PutUnsynced(Ses(1, 2));
  auto got = s->Get(1);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->ctime_unix_ms, 2u);
  ASSERT_TRUE(s->Put(Ses(1, 3)).ok());
  EXPECT_EQ(s->file().journal_entries(), entries + 1);
  // Many updates of one key between two writes: sealed once.
  for (uint64_t v = 10; v < 1000; ++v) s->PutUnsynced(Ses(2, v));
  EXPECT_EQ(s->Get(2)->ctime_unix_ms, 999u);
  ASSERT_TRUE(s->Put(Ses(3, 3)).ok());
  EXPECT_EQ(s->file().journal_entries(), entries + 3);
  s.reset();
  fs.Crash();  // only what was synced survives: all of it here
  s = OpenOrDie(fs);
  EXPECT_EQ(StateOf(*s), (State{{1, 3}, {2, 999}, {3, 3}}));
}

TEST(StoreUnsynced, WaitingDeleteIsSeenByEveryRead) {
  FakeFileSystem fs;
  auto s = OpenOrDie(fs);
  ASSERT_TRUE(s->Put(Ses(1, 1)).ok());
  ASSERT_TRUE(s->Put(Ses(2, 2)).ok());
  s->DeleteUnsynced(1);
  EXPECT_EQ(s->Get(1).status().code(), StatusCode::kNotFound);
  EXPECT_FALSE(s->Contains(1));
  EXPECT_EQ(s->size(), 1u);
  s->PutUnsynced(Ses(4, 4));  // a new key
  s->PutUnsynced(Ses(2, 2));  // a stored one
  EXPECT_EQ(s->size(), 2u);
  EXPECT_TRUE(s->Contains(4));
  EXPECT_EQ(s->List(), (std::vector<uint32_t>{2, 4}));
  s->PutUnsynced(Ses(5, 5));
  EXPECT_EQ(StateOf(*s), (State{{2, 2}, {4, 4}, {5, 5}}));
  // Closing writes them (unsynced): a process exit keeps them, a power
  // loss before the next synced write may not.
  s.reset();
  s = OpenOrDie(fs);
  EXPECT_EQ(StateOf(*s), (State{{2, 2}, {4, 4}, {5, 5}}));
}

// More keys wait than kMaxPendingRecords: the early ones go to the file
// (unsynced) on the way, and all of them become durable with the next
// synced write.
TEST(StoreUnsynced, ManyWaitingKeysAllBecomeDurable) {
  FakeFileSystem fs;
  auto s = OpenOrDie(fs);
  const uint32_t n = 3 * kMaxPendingRecords + 5;
  for (uint32_t k = 1; k <= n; ++k) s->PutUnsynced(Ses(k, k));
  for (uint32_t k = 1; k <= n; k += 37) s->PutUnsynced(Ses(k, 1000 + k));
  ASSERT_TRUE(s->Put(Ses(n + 1, 1)).ok());
  s.reset();
  fs.Crash();
  s = OpenOrDie(fs);
  State want;
  for (uint32_t k = 1; k <= n; ++k) want[k] = (k - 1) % 37 ? k : 1000 + k;
  want[n + 1] = 1;
  EXPECT_EQ(StateOf(*s), want);
}

// A reader on another thread never sees a record older than one it has
// seen while a synced write replaces a waiting unsynced one.
TEST(StoreUnsynced, ReadersNeverGoBackWhileAWriteReplacesAWaitingOne) {
  FakeFileSystem fs;
  auto s = OpenOrDie(fs);
  ASSERT_TRUE(s->Put(Ses(1, 1)).ok());
  std::atomic<bool> done{false}, went_back{false};
  std::thread reader([&] {
    uint64_t last = 0;
    while (!done) {
      auto r = s->Get(1);
      if (!r.ok() || r->ctime_unix_ms < last) went_back = true;
      if (r.ok()) last = r->ctime_unix_ms;
    }
  });
  for (uint64_t v = 2; v < 2000; v += 2) {
    s->PutUnsynced(Ses(1, v));
    ASSERT_TRUE(s->Put(Ses(1, v + 1)).ok());
  }
  done = true;
  reader.join();
  EXPECT_FALSE(went_back);
}

// A batch that writes one waiting key twice still takes every other
// waiting write with it.
TEST(StoreUnsynced, BatchWritingAKeyTwiceTakesTheOtherWaitingWrites) {
  FakeFileSystem fs;
  auto s = OpenOrDie(fs);
  s->PutUnsynced(Ses(1, 2));
  s->PutUnsynced(Ses(2, 2));
  auto b = s->NewBatch();
  ASSERT_TRUE(b.Put(Ses(1, 3)).ok());
  ASSERT_TRUE(b.Put(Ses(1, 4)).ok());
  ASSERT_TRUE(s->Apply(std::move(b)).ok());
  s.reset();
  fs.Crash();
  s = OpenOrDie(fs);
  EXPECT_EQ(StateOf(*s), (State{{1, 4}, {2, 2}}));
}

// A synced write that fails leaves the unsynced write it would have
// replaced in place.
TEST(StoreUnsynced, FailedWriteKeepsTheWaitingOne) {
  FakeFileSystem fs;
  auto s = OpenOrDie(fs, Plain());
  ASSERT_TRUE(s->Put(Ses(1, 1)).ok());
  s->PutUnsynced(Ses(1, 2));
  fs.FailNth(FakeFileSystem::Op::kSync, 1, InternalError("EIO"));
  EXPECT_FALSE(s->Put(Ses(1, 3)).ok());
  EXPECT_EQ(s->Get(1)->ctime_unix_ms, 2u);
  ASSERT_TRUE(s->Put(Ses(2, 2)).ok());
  s.reset();
  fs.Crash();
  s = OpenOrDie(fs, Plain());
  EXPECT_EQ(StateOf(*s), (State{{1, 2}, {2, 2}}));
}

TEST(StoreJournal, DamagedEntryFailsClosedOverTheSnapshotValue) {
  FakeFileSystem fs;
  auto s = OpenOrDie(fs, Plain());
  for (uint32_t i = 1; i <= 3; ++i) ASSERT_TRUE(s->Put(Ses(i, i)).ok());
  ASSERT_TRUE(s->file().Compact().ok());
  size_t first = Read(fs, kLog).size();
  ASSERT_TRUE(s->Put(Ses(2, 22)).ok());
  ASSERT_TRUE(s->Put(Ses(4, 4)).ok());  // a later commit: 2 was committed
  s.reset();
  Bytes j = Read(fs, kLog);
  j[first + 4 + 18 + 20] ^= 0x10;  // inside the new record of key 2
  fs.SetContents(kLog, j);
  s = OpenOrDie(fs);
  // The snapshot's older value of 2 must not come back.
  EXPECT_EQ(StateOf(*s), (State{{1, 1}, {3, 3}, {4, 4}}));
  EXPECT_EQ(s->size(), 3u);
  EXPECT_FALSE(s->Contains(2));
  EXPECT_EQ(s->Get(2).status().code(), StatusCode::kDataLoss);
  ASSERT_EQ(s->corrupt_records().size(), 1u);
  // Compaction persists it as absent.
  ASSERT_TRUE(s->file().Compact().ok());
  s.reset();
  s = OpenOrDie(fs);
  EXPECT_EQ(StateOf(*s), (State{{1, 1}, {3, 3}, {4, 4}}));
  EXPECT_EQ(s->Get(2).status().code(), StatusCode::kNotFound);
}

TEST(StoreJournal, DamagedCommittedEntryFailsClosedForItsKeyOnly) {
  FakeFileSystem fs;
  auto s = OpenOrDie(fs, Plain());
  ASSERT_TRUE(s->Put(Ses(1, 1)).ok());
  size_t second = Read(fs, kLog).size();
  ASSERT_TRUE(s->Put(Ses(2, 2)).ok());
  ASSERT_TRUE(s->Put(Ses(3, 3)).ok());
  s.reset();
  Bytes j = Read(fs, kLog);
  j[second + 4 + 18 + 20] ^= 0x10;  // inside entry 2's record
  fs.SetContents(kLog, j);
  s = OpenOrDie(fs);
  EXPECT_EQ(StateOf(*s), (State{{1, 1}, {3, 3}}));
  auto bad = s->corrupt_records();
  ASSERT_EQ(bad.size(), 1u);
  EXPECT_EQ(bad[0].source, CorruptRecord::Source::kJournal);
  EXPECT_EQ(bad[0].claimed_key, 2u);
  EXPECT_EQ(s->Get(2).status().code(), StatusCode::kDataLoss);
}

TEST(StoreJournal, TornTailIsDiscarded) {
  for (size_t cut = 1; cut < 150; cut += 7) {
    FakeFileSystem fs;
    auto s = OpenOrDie(fs, Plain());
    ASSERT_TRUE(s->Put(Ses(1, 1)).ok());
    size_t good = Read(fs, kLog).size();
    ASSERT_TRUE(s->Put(Ses(2, 2)).ok());
    s.reset();
    Bytes j = Read(fs, kLog);
    ASSERT_LT(good + cut, j.size());
    j.resize(good + cut);
    fs.SetContents(kLog, j);
    s = OpenOrDie(fs);
    EXPECT_EQ(StateOf(*s), (State{{1, 1}}));
    EXPECT_TRUE(s->corrupt_records().empty());
    ASSERT_TRUE(s->Put(Ses(4, 4)).ok());
    s.reset();
    s = OpenOrDie(fs);
    EXPECT_EQ(StateOf(*s), (State{{1, 1}, {4, 4}}));
  }
}

TEST(StoreJournal, HugeUnreadableTailIsDataLoss) {
  FakeFileSystem fs;
  auto s = OpenOrDie(fs, Plain());
  ASSERT_TRUE(s->Put(Ses(1, 1)).ok());
  s.reset();
  Bytes j = Read(fs, kLog);
  j.resize(
      j.size() + kMaxUnsyncedBytes + kMaxCommitGroupBytes + 2 * kMaxRecordSize,
      0xee);
  fs.SetContents(kLog, j);
  EXPECT_EQ(SesKeysStore::Open(fs, kPath, Keys(), kOwner).status().code(),
            StatusCode::kDataLoss);
}

TEST(StoreJournal, ReplayedEntryIsDetected) {
  FakeFileSystem fs;
  auto s = OpenOrDie(fs, Plain());
  ASSERT_TRUE(s->Put(Ses(1, 1)).ok());
  size_t second = Read(fs, kLog).size();
  ASSERT_TRUE(s->Put(Ses(1, 2)).ok());
  s.reset();
  Bytes j = Read(fs, kLog);
  Bytes first(j.begin() + 52, j.begin() + second);
  j.insert(j.end(), first.begin(), first.end());  // roll key 1 back to 1
  fs.SetContents(kLog, j);
  EXPECT_EQ(SesKeysStore::Open(fs, kPath, Keys(), kOwner).status().code(),
            StatusCode::kDataLoss);
}

TEST(StoreJournal, JournalWithoutSnapshotIsDataLoss) {
  FakeFileSystem fs;
  auto s = OpenOrDie(fs);
  ASSERT_TRUE(s->Put(Ses(1, 1)).ok());
  s.reset();
  ASSERT_TRUE(fs.Remove(kPath).ok());
  EXPECT_EQ(SesKeysStore::Open(fs, kPath, Keys(), kOwner).status().code(),
            StatusCode::kDataLoss);
}

TEST(StoreJournal, DamagedJournalHeaderIsDataLoss) {
  FakeFileSystem fs;
  auto s = OpenOrDie(fs);
  s.reset();
  Bytes j = Read(fs, kLog);
  j[5] ^= 1;
  fs.SetContents(kLog, j);
  EXPECT_EQ(SesKeysStore::Open(fs, kPath, Keys(), kOwner).status().code(),
            StatusCode::kDataLoss);
}

// ----------------------------------------------------------------
// preallocation

TEST(StorePrealloc, ZeroTailIsSpaceNotATornAppend) {
  FakeFileSystem fs;
  StoreOptions o;
  o.journal_preallocate_bytes = 4096;
  auto s = OpenOrDie(fs, o);
  uint64_t gen = s->file().generation();
  size_t size = Read(fs, kLog).size();
  EXPECT_EQ(size, 52u + 4096u);  // header, then zeros
  ASSERT_TRUE(s->Put(Ses(1, 1)).ok());
  ASSERT_TRUE(s->Put(Ses(2, 2)).ok());
  EXPECT_EQ(Read(fs, kLog).size(), size);  // written over the zeros
  s.reset();
  fs.Crash();
  s = OpenOrDie(fs, o);
  EXPECT_EQ(StateOf(*s), (State{{1, 1}, {2, 2}}));
  EXPECT_EQ(s->file().generation(), gen);  // nothing discarded or rewritten
  EXPECT_TRUE(s->corrupt_records().empty());
  // Appends continue where the entries end, not at the file's end.
  ASSERT_TRUE(s->Put(Ses(3, 3)).ok());
  s.reset();
  s = OpenOrDie(fs, o);
  EXPECT_EQ(StateOf(*s), (State{{1, 1}, {2, 2}, {3, 3}}));
  EXPECT_EQ(s->file().generation(), gen);
}

TEST(StorePrealloc, SpaceGrowsWhenUsedUp) {
  FakeFileSystem fs;
  StoreOptions o;
  o.journal_preallocate_bytes = 1000;
  auto s = OpenOrDie(fs, o);
  for (uint32_t i = 0; i < 40; ++i) ASSERT_TRUE(s->Put(Ses(i, i)).ok());
  size_t size = Read(fs, kLog).size();
  EXPECT_GT(size, 40u * 150);
  State want = StateOf(*s);
  s.reset();
  fs.Crash();
  s = OpenOrDie(fs, o);
  EXPECT_EQ(StateOf(*s), want);
  EXPECT_EQ(s->file().journal_entries(), 40u);
}

TEST(StorePrealloc, FullDiskGoesWithoutIt) {
  FakeFileSystem fs;
  auto s = OpenOrDie(fs);  // 256 KiB
  ASSERT_TRUE(s->Put(Ses(1, 1)).ok());
  size_t used = 0;
  for (const auto& f : fs.ListFiles()) used += Read(fs, f).size();
  // Room for a new snapshot and a bare journal, not for 256 KiB of zeros.
  fs.SetCapacity(used + 2048);
  ASSERT_TRUE(s->file().Compact().ok());
  EXPECT_LT(Read(fs, kLog).size(), 100u);
  ASSERT_TRUE(s->Put(Ses(2, 2)).ok());
  fs.SetCapacity(std::nullopt);
  s.reset();
  fs.Crash();
  s = OpenOrDie(fs);
  EXPECT_EQ(StateOf(*s), (State{{1, 1}, {2, 2}}));
}

}  // namespace
}  // namespace kgr::store_test
