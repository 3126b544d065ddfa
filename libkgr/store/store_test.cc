#include "kgr/store.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "testing/fake_filesystem.h"

namespace kgr {
namespace {

using ::kgr::testing::FakeFileSystem;
using Op = FakeFileSystem::Op;

constexpr uint32_t kOwner = 0x00c0ffee;
constexpr char kPath[] = "state/ses_keys";
constexpr char kLog[] = "state/ses_keys.log";

SymmetricKeys Keys(uint8_t base = 1) {
  SecretBytes enc(kKeySize), mac(kKeySize);
  for (size_t i = 0; i < kKeySize; ++i) {
    enc.data()[i] = static_cast<uint8_t>(base + i);
    mac.data()[i] = static_cast<uint8_t>(base + 0x80 + i);
  }
  return {std::move(enc), std::move(mac)};
}

// A ses_keys record whose "value" is its ctime (and key_version).
SesKey Ses(uint32_t peer, uint64_t value) {
  SesKey k;
  k.n_id = peer;
  k.ctime_unix_ms = value;
  k.key_version = static_cast<uint32_t>(value);
  k.nnsk = Keys(static_cast<uint8_t>(value));
  TopicBytes t{};
  t[0] = static_cast<uint8_t>(peer);
  k.topic3 = t;
  return k;
}

using State = std::map<uint32_t, uint64_t>;  // peer -> value

State StateOf(const SesKeysStore& s) {
  State st;
  s.ForEach([&](const SesKey& k) { st[k.n_id] = k.ctime_unix_ms; });
  return st;
}

std::unique_ptr<SesKeysStore> OpenOrDie(FileSystem& fs,
                                        const StoreOptions& o = {}) {
  auto s = SesKeysStore::Open(fs, kPath, Keys(), kOwner, o);
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  return s.ok() ? std::move(s).value() : nullptr;
}

// A journal without preallocated space: appends at the file's end, so tests
// that edit journal bytes can find entries by file size.
StoreOptions Plain() {
  StoreOptions o;
  o.journal_preallocate_bytes = 0;
  return o;
}

Bytes Read(FakeFileSystem& fs, const std::string& path) {
  auto b = fs.ReadFile(path);
  EXPECT_TRUE(b.ok());
  return b.ok() ? *b : Bytes();
}

TEST(Store, PutGetDeleteReopen) {
  FakeFileSystem fs;
  auto s = OpenOrDie(fs);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->Get(1).status().code(), StatusCode::kNotFound);
  ASSERT_TRUE(s->Put(Ses(1, 10)).ok());
  ASSERT_TRUE(s->Put(Ses(2, 20)).ok());
  ASSERT_TRUE(s->Put(Ses(1, 11)).ok());
  ASSERT_TRUE(s->Delete(2).ok());
  ASSERT_TRUE(s->Delete(99).ok());  // absent: fine
  auto got = s->Get(1);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->ctime_unix_ms, 11u);
  EXPECT_TRUE(
      got->nnsk.RawEncKeyBytes().Equals(Ses(1, 11).nnsk.RawEncKeyBytes()));
  EXPECT_EQ(s->size(), 1u);
  s.reset();
  s = OpenOrDie(fs);
  ASSERT_TRUE(s);
  EXPECT_EQ(StateOf(*s), (State{{1, 11}}));
  EXPECT_EQ(s->Get(2).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(fs.FileMode(kPath), 0600);
  EXPECT_EQ(fs.FileMode(kLog), 0600);
}

TEST(Store, ListForEachInKeyOrder) {
  FakeFileSystem fs;
  auto s = OpenOrDie(fs);
  for (uint32_t k : {5u, 3u, 9u}) ASSERT_TRUE(s->Put(Ses(k, k)).ok());
  EXPECT_EQ(s->List(), (std::vector<uint32_t>{3, 5, 9}));
  std::vector<uint32_t> seen;
  s->ForEach([&](const SesKey& k) { seen.push_back(k.n_id); });
  EXPECT_EQ(seen, (std::vector<uint32_t>{3, 5, 9}));
  EXPECT_TRUE(s->Contains(5));
  EXPECT_FALSE(s->Contains(4));
}

TEST(Store, JournalReplayWithoutCompaction) {
  FakeFileSystem fs;
  auto s = OpenOrDie(fs);
  uint64_t gen = s->file().generation();
  for (uint32_t i = 0; i < 20; ++i) ASSERT_TRUE(s->Put(Ses(i % 7, i)).ok());
  ASSERT_TRUE(s->Delete(3).ok());
  State want = StateOf(*s);
  EXPECT_EQ(s->file().journal_entries(), 21u);
  s.reset();
  s = OpenOrDie(fs);
  EXPECT_EQ(StateOf(*s), want);
  EXPECT_EQ(s->file().generation(), gen);  // nothing rewritten
}

TEST(Store, CompactionByEntriesAndBytes) {
  FakeFileSystem fs;
  StoreOptions o;
  o.compact_after_entries = 4;
  auto s = OpenOrDie(fs, o);
  uint64_t gen = s->file().generation();
  for (uint32_t i = 0; i < 10; ++i) ASSERT_TRUE(s->Put(Ses(i, i)).ok());
  EXPECT_EQ(s->file().generation(), gen + 2);
  EXPECT_LE(s->file().journal_entries(), 4u);
  State want = StateOf(*s);
  s.reset();
  s = OpenOrDie(fs, o);
  EXPECT_EQ(StateOf(*s), want);

  StoreOptions b;
  b.compact_after_bytes = 600;
  s.reset();
  s = OpenOrDie(fs, b);
  gen = s->file().generation();
  for (uint32_t i = 0; i < 10; ++i) ASSERT_TRUE(s->Put(Ses(i, i + 100)).ok());
  EXPECT_GT(s->file().generation(), gen);
  ASSERT_TRUE(s->file().Compact().ok());
  EXPECT_EQ(s->file().journal_entries(), 0u);
  want = StateOf(*s);
  s.reset();
  s = OpenOrDie(fs, b);
  EXPECT_EQ(StateOf(*s), want);
}

TEST(Store, BatchIsOneSyncAndAtomic) {
  FakeFileSystem fs;
  auto s = OpenOrDie(fs);
  ASSERT_TRUE(s->Put(Ses(100, 1)).ok());
  int syncs = fs.Count(Op::kSync);
  auto b = s->NewBatch();
  for (uint32_t i = 0; i < 10; ++i) ASSERT_TRUE(b.Put(Ses(i, i)).ok());
  b.Delete(100);
  ASSERT_TRUE(s->Apply(std::move(b)).ok());
  EXPECT_EQ(fs.Count(Op::kSync) - syncs, 1);
  EXPECT_EQ(s->size(), 10u);
  std::vector<SesKey> all;
  for (uint32_t i = 20; i < 25; ++i) all.push_back(Ses(i, i));
  syncs = fs.Count(Op::kSync);
  ASSERT_TRUE(s->PutAll(all).ok());
  EXPECT_EQ(fs.Count(Op::kSync) - syncs, 1);
  EXPECT_EQ(s->size(), 15u);
}

TEST(Store, BatchOfAnotherStoreOrBadRecordRejected) {
  FakeFileSystem fs;
  auto s = OpenOrDie(fs);
  auto t = SesKeysStore::Open(fs, "other/ses_keys", Keys(), kOwner);
  ASSERT_TRUE(t.ok());
  auto b = (*t)->NewBatch();
  ASSERT_TRUE(b.Put(Ses(1, 1)).ok());
  EXPECT_EQ(s->Apply(std::move(b)).code(), StatusCode::kInvalidArgument);
  // Raw API: record sealed for another owner, or key mismatch.
  auto foreign = EncodeRecord(Ses(1, 1), Keys(), kOwner + 1);
  ASSERT_TRUE(foreign.ok());
  EXPECT_FALSE(s->file().Put(1, *foreign).ok());
  auto mine = EncodeRecord(Ses(1, 1), Keys(), kOwner);
  ASSERT_TRUE(mine.ok());
  EXPECT_EQ(s->file().Put(2, *mine).code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(s->file().Put(1, *mine).ok());
  EXPECT_EQ(s->size(), 1u);
}

TEST(Store, ConcurrentWritersAreGroupCommitted) {
  FakeFileSystem fs;
  auto s = OpenOrDie(fs);
  constexpr int kThreads = 8, kPuts = 50;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPuts; ++i) {
        EXPECT_TRUE(s->Put(Ses(static_cast<uint32_t>(t * 1000 + i), i)).ok());
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(s->size(), size_t{kThreads * kPuts});
  EXPECT_LE(fs.Count(Op::kSync), kThreads * kPuts + 2);
  State want = StateOf(*s);
  s.reset();
  s = OpenOrDie(fs);
  EXPECT_EQ(StateOf(*s), want);
}

// ---------------------------------------------------------------- crashes

struct CrashMode {
  const char* name;
  FakeFileSystem::CrashOptions options;
};

std::vector<CrashMode> CrashModes() {
  std::vector<CrashMode> modes;
  modes.push_back({"drop-unsynced", {}});
  FakeFileSystem::CrashOptions keep;
  keep.keep_unsynced_bytes = 1u << 30;
  modes.push_back({"keep-unsynced", keep});
  FakeFileSystem::CrashOptions dirs;
  dirs.keep_dir_changes = true;
  modes.push_back({"keep-dir-changes", dirs});
  for (uint32_t seed = 1; seed <= 3; ++seed) {
    FakeFileSystem::CrashOptions torn;
    torn.random_seed = seed;
    torn.garble_kept = seed == 3;
    torn.keep_dir_changes = seed == 2;
    modes.push_back({"torn", torn});
  }
  return modes;
}

// Crashes `fs`, reopens the store into `s` and returns its state.
State CrashAndReopen(FakeFileSystem& fs, std::unique_ptr<SesKeysStore>& s,
                     const StoreOptions& o,
                     const FakeFileSystem::CrashOptions& crash) {
  s.reset();
  fs.Crash(crash);
  s = OpenOrDie(fs, o);
  return s ? StateOf(*s) : State{};
}

// The reopened store, in state `got`, keeps working and stays consistent.
void ExpectStillWorks(FakeFileSystem& fs, std::unique_ptr<SesKeysStore>& s,
                      const StoreOptions& o, State got) {
  ASSERT_TRUE(s->Put(Ses(50, 5)).ok());
  got[50] = 5;
  s.reset();
  s = OpenOrDie(fs, o);
  ASSERT_TRUE(s);
  EXPECT_EQ(StateOf(*s), got);
}

// A workload of single puts, deletes and a multi-record batch, with a
// compaction every few entries, so that a crash can hit every step of an
// append, a group commit, a snapshot write and a journal reset.
using Step = std::function<Status(SesKeysStore&)>;
std::vector<Step> Workload() {
  std::vector<Step> steps;
  for (uint32_t i = 0; i < 3; ++i) {
    steps.push_back([i](SesKeysStore& s) { return s.Put(Ses(i, 10 + i)); });
  }
  steps.push_back([](SesKeysStore& s) {
    auto b = s.NewBatch();
    KGR_RETURN_IF_ERROR(b.Put(Ses(0, 100)));
    KGR_RETURN_IF_ERROR(b.Put(Ses(7, 107)));
    b.Delete(1);
    return s.Apply(std::move(b));
  });
  steps.push_back([](SesKeysStore& s) { return s.Delete(2); });
  steps.push_back([](SesKeysStore& s) { return s.Put(Ses(8, 108)); });
  steps.push_back([](SesKeysStore& s) { return s.file().Compact(); });
  steps.push_back([](SesKeysStore& s) { return s.Put(Ses(0, 200)); });
  return steps;
}

// Journals without preallocation, with space that runs out during the
// workload, and with the default (never runs out here).
class StoreCrashPrealloc : public ::testing::TestWithParam<size_t> {};
INSTANTIATE_TEST_SUITE_P(Sizes, StoreCrashPrealloc,
                         ::testing::Values(0, 300, 256 << 10));

TEST_P(StoreCrashPrealloc, EveryStepOfEveryWriteLeavesOldOrNewState) {
  StoreOptions o;
  o.compact_after_entries = 3;
  o.journal_preallocate_bytes = GetParam();
  std::vector<Step> steps = Workload();
  // The state after each prefix of the workload, from a run without faults.
  std::vector<State> after;
  {
    FakeFileSystem fs;
    auto s = OpenOrDie(fs, o);
    after.push_back(StateOf(*s));
    for (auto& step : steps) {
      ASSERT_TRUE(step(*s).ok());
      after.push_back(StateOf(*s));
    }
  }
  for (const CrashMode& mode : CrashModes()) {
    for (int k = 0;; ++k) {
      SCOPED_TRACE(std::string(mode.name) + " after " + std::to_string(k) +
                   " mutations");
      FakeFileSystem fs;
      auto s = OpenOrDie(fs, o);
      ASSERT_TRUE(s);
      int before = fs.mutations();
      fs.FailAfterMutations(k);
      size_t ok_steps = 0;
      for (auto& step : steps) {
        if (!step(*s).ok()) break;  // the process "dies" at its first error
        ++ok_steps;
      }
      bool faulted = fs.mutations() - before > k;
      State got = CrashAndReopen(fs, s, o, mode.options);
      ASSERT_TRUE(s);
      EXPECT_TRUE(s->corrupt_records().empty());
      // Everything acknowledged survives; the failed step may or may not.
      bool matches = got == after[ok_steps] || (ok_steps + 1 < after.size() &&
                                                got == after[ok_steps + 1]);
      EXPECT_TRUE(matches) << "ok steps " << ok_steps;
      ExpectStillWorks(fs, s, o, got);
      if (!faulted) {
        EXPECT_EQ(ok_steps, steps.size());
        // The workload makes this many file operations; each was a crash
        // point (guards against the injection silently not happening).
        EXPECT_GT(k, 30);
        break;
      }
    }
  }
}

// Unsynced batches wait in memory and go out ahead of the next synced
// group, in one write: a crash keeps a prefix of the groups, never a later
// group without an earlier one.
TEST_P(StoreCrashPrealloc, UnsyncedBatchesGoOutWithTheNextWriteInOrder) {
  StoreOptions o;
  o.journal_preallocate_bytes = GetParam();
  const std::vector<State> prefixes = {
      {{1, 1}}, {{1, 1}, {2, 2}}, {{1, 3}, {2, 2}}, {{1, 3}, {2, 2}, {4, 4}}};
  for (const CrashMode& mode : CrashModes()) {
    for (int k = 0;; ++k) {
      SCOPED_TRACE(std::string(mode.name) + " k=" + std::to_string(k));
      FakeFileSystem fs;
      auto s = OpenOrDie(fs, o);
      ASSERT_TRUE(s->Put(Ses(1, 1)).ok());
      Bytes journal = Read(fs, kLog);
      s->PutUnsynced(Ses(2, 2));
      s->PutUnsynced(Ses(1, 3));
      EXPECT_EQ(Read(fs, kLog), journal);   // nothing written yet
      EXPECT_EQ(StateOf(*s), prefixes[2]);  // but applied
      int before = fs.mutations();
      fs.FailAfterMutations(k);
      Status last = s->Put(Ses(4, 4));
      bool faulted = fs.mutations() - before > k;
      State got = CrashAndReopen(fs, s, o, mode.options);
      ASSERT_TRUE(s);
      if (last.ok()) {
        EXPECT_EQ(got, prefixes[3]);
      } else {
        EXPECT_NE(std::find(prefixes.begin(), prefixes.end(), got),
                  prefixes.end());
      }
      ExpectStillWorks(fs, s, o, got);
      if (!faulted) break;
    }
  }
}

TEST(StoreCrash, CrashDuringCreation) {
  for (const CrashMode& mode : CrashModes()) {
    for (int k = 0;; ++k) {
      FakeFileSystem fs;
      fs.FailAfterMutations(k);
      auto s = SesKeysStore::Open(fs, kPath, Keys(), kOwner);
      bool opened = s.ok();
      fs.Crash(mode.options);
      auto again = SesKeysStore::Open(fs, kPath, Keys(), kOwner);
      ASSERT_TRUE(again.ok())
          << mode.name << " k=" << k << ": " << again.status().ToString();
      EXPECT_EQ((*again)->size(), 0u);
      if (opened) break;
    }
  }
}

TEST(StoreCrash, StaleJournalAfterSnapshotIsIgnored) {
  FakeFileSystem fs;
  auto s = OpenOrDie(fs);
  ASSERT_TRUE(s->Put(Ses(1, 1)).ok());
  ASSERT_TRUE(s->Put(Ses(2, 2)).ok());
  Bytes old_journal = Read(fs, kLog);
  ASSERT_TRUE(s->Delete(1).ok());
  ASSERT_TRUE(s->file().Compact().ok());
  s.reset();
  // As if the crash came after the new snapshot but before the new journal.
  fs.SetContents(kLog, old_journal);
  s = OpenOrDie(fs);
  EXPECT_EQ(StateOf(*s), (State{{2, 2}}));
  EXPECT_TRUE(s->corrupt_records().empty());
}

TEST(StoreCrash, UnsyncedUsageUpdateIsLostOrKeptWhole) {
  FakeFileSystem fs;
  auto s = OpenOrDie(fs);
  ASSERT_TRUE(s->Put(Ses(1, 1)).ok());
  s->PutUnsynced(Ses(1, 2));
  EXPECT_EQ(StateOf(*s), (State{{1, 2}}));
  s.reset();
  fs.Crash();
  s = OpenOrDie(fs);
  EXPECT_EQ(StateOf(*s), (State{{1, 1}}));
  // A later synced write makes it durable too.
  s->PutUnsynced(Ses(1, 3));
  ASSERT_TRUE(s->Put(Ses(2, 2)).ok());
  s.reset();
  fs.Crash();
  s = OpenOrDie(fs);
  EXPECT_EQ(StateOf(*s), (State{{1, 3}, {2, 2}}));
}

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

// ---------------------------------------------------------------- faults

FakeFileSystem::CrashOptions KeepUnsynced() {
  FakeFileSystem::CrashOptions o;
  o.keep_unsynced_bytes = size_t{1} << 30;
  return o;
}

TEST(StoreFault, DiskFullKeepsOldStateInMemoryAndOnDisk) {
  FakeFileSystem fs;
  auto s = OpenOrDie(fs, Plain());
  ASSERT_TRUE(s->Put(Ses(1, 1)).ok());
  size_t used = 0;
  for (const auto& f : fs.ListFiles()) used += Read(fs, f).size();
  fs.SetCapacity(used + 40);  // a record does not fit
  Status st = s->Put(Ses(1, 2));
  EXPECT_EQ(st.code(), StatusCode::kResourceExhausted) << st.ToString();
  EXPECT_EQ(StateOf(*s), (State{{1, 1}}));
  st = s->Put(Ses(3, 3));
  EXPECT_EQ(st.code(), StatusCode::kResourceExhausted) << st.ToString();
  // Reopen as is (no crash, disk still full): the partial append is
  // discarded, reads work, writes still fail cleanly.
  s.reset();
  s = OpenOrDie(fs, Plain());
  ASSERT_TRUE(s);
  EXPECT_EQ(StateOf(*s), (State{{1, 1}}));
  EXPECT_EQ(s->Put(Ses(1, 2)).code(), StatusCode::kResourceExhausted);
  // Space again: writes work.
  fs.SetCapacity(std::nullopt);
  ASSERT_TRUE(s->Put(Ses(1, 2)).ok());
  s.reset();
  fs.Crash();
  s = OpenOrDie(fs, Plain());
  EXPECT_EQ(StateOf(*s), (State{{1, 2}}));
}

TEST(StoreFault, FailedSyncIsNotAppliedAndStoreRecovers) {
  for (Op op : {Op::kAppend, Op::kSync}) {
    FakeFileSystem fs;
    auto s = OpenOrDie(fs);
    ASSERT_TRUE(s->Put(Ses(1, 1)).ok());
    fs.FailNth(op, 1, InternalError("EIO"));
    EXPECT_EQ(s->Put(Ses(2, 2)).code(), StatusCode::kInternal);
    EXPECT_EQ(StateOf(*s), (State{{1, 1}}));
    // The store rewrote its files from memory: the failed entry is gone for
    // good, even after a crash.
    s.reset();
    fs.Crash(KeepUnsynced());
    s = OpenOrDie(fs);
    EXPECT_EQ(StateOf(*s), (State{{1, 1}}));
    ASSERT_TRUE(s->Put(Ses(3, 3)).ok());
    EXPECT_EQ(StateOf(*s), (State{{1, 1}, {3, 3}}));
  }
}

TEST(StoreFault, FailedRewriteIsRetriedBeforeNextWrite) {
  FakeFileSystem fs;
  auto s = OpenOrDie(fs);
  ASSERT_TRUE(s->Put(Ses(1, 1)).ok());
  fs.FailNth(Op::kSync, 1, InternalError("EIO"));    // the journal append
  fs.FailNth(Op::kRename, 1, InternalError("EIO"));  // the rewrite after it
  EXPECT_FALSE(s->Put(Ses(2, 2)).ok());
  ASSERT_TRUE(s->Put(Ses(3, 3)).ok());
  s.reset();
  fs.Crash(KeepUnsynced());
  s = OpenOrDie(fs);
  EXPECT_EQ(StateOf(*s), (State{{1, 1}, {3, 3}}));
}

// ---------------------------------------------------------------- damage

// Offset of record `i` in a snapshot written by Compact().
size_t RecordOffset(const Bytes& snap, size_t i) {
  size_t at = 56 + i * 8;
  return (size_t{snap[at]} << 24) | (size_t{snap[at + 1]} << 16) |
         (size_t{snap[at + 2]} << 8) | snap[at + 3];
}

class StoreDamage : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = OpenOrDie(fs_);
    for (uint32_t i = 1; i <= 5; ++i) ASSERT_TRUE(s->Put(Ses(i, i)).ok());
    ASSERT_TRUE(s->file().Compact().ok());
    snap_ = Read(fs_, kPath);
  }
  void Flip(size_t offset) {
    Bytes b = snap_;
    b[offset] ^= 0x01;
    fs_.SetContents(kPath, b);
  }
  FakeFileSystem fs_;
  Bytes snap_;
};

TEST_F(StoreDamage, CorruptRecordIsReportedOthersServed) {
  Flip(RecordOffset(snap_, 2) + 4 + 30);  // inside record 3's clear part
  auto s = OpenOrDie(fs_);
  ASSERT_TRUE(s);
  auto bad = s->corrupt_records();
  ASSERT_EQ(bad.size(), 1u);
  EXPECT_EQ(bad[0].source, CorruptRecord::Source::kSnapshot);
  EXPECT_EQ(bad[0].index, 2u);
  EXPECT_EQ(bad[0].claimed_key, 3u);
  EXPECT_EQ(bad[0].status.code(), StatusCode::kDataLoss);
  auto got = s->Get(3);
  EXPECT_EQ(got.status().code(), StatusCode::kDataLoss);
  EXPECT_EQ(got.status().message(), "ses_keys record 3: verification failed");
  EXPECT_EQ(StateOf(*s), (State{{1, 1}, {2, 2}, {4, 4}, {5, 5}}));
  // Kept through compactions, so it is reported again.
  ASSERT_TRUE(s->file().Compact().ok());
  s.reset();
  s = OpenOrDie(fs_);
  EXPECT_EQ(s->corrupt_records().size(), 1u);
  // A new put repairs it.
  ASSERT_TRUE(s->Put(Ses(3, 33)).ok());
  EXPECT_TRUE(s->corrupt_records().empty());
  s.reset();
  s = OpenOrDie(fs_);
  EXPECT_TRUE(s->corrupt_records().empty());
  EXPECT_EQ(s->Get(3)->ctime_unix_ms, 33u);
}

TEST_F(StoreDamage, DropCorruptForgetsIt) {
  Flip(RecordOffset(snap_, 0) + 60);
  auto s = OpenOrDie(fs_);
  ASSERT_EQ(s->corrupt_records().size(), 1u);
  ASSERT_TRUE(s->file().DropCorrupt().ok());
  EXPECT_TRUE(s->corrupt_records().empty());
  EXPECT_EQ(s->Get(1).status().code(), StatusCode::kNotFound);
  s.reset();
  s = OpenOrDie(fs_);
  EXPECT_TRUE(s->corrupt_records().empty());
  EXPECT_EQ(s->size(), 4u);
}

TEST_F(StoreDamage, EveryByteOfTheSnapshotFlipped) {
  // Whatever byte is damaged: Open fails with DATA_LOSS/INVALID_ARGUMENT, or
  // it succeeds and every record is either intact or reported corrupt.
  for (size_t i = 0; i < snap_.size(); ++i) {
    SCOPED_TRACE("byte " + std::to_string(i));
    Flip(i);
    auto s = SesKeysStore::Open(fs_, kPath, Keys(), kOwner);
    if (!s.ok()) {
      EXPECT_TRUE(s.status().code() == StatusCode::kDataLoss ||
                  s.status().code() == StatusCode::kInvalidArgument);
      continue;
    }
    State got = StateOf(**s);
    size_t bad = (*s)->corrupt_records().size();
    EXPECT_EQ(got.size() + bad, 5u);
    for (const auto& [k, v] : got) EXPECT_EQ(k, v);
    EXPECT_LE(bad, 1u);  // one flipped byte damages at most one record
  }
}

TEST_F(StoreDamage, DamagedIndexFallsBackToScan) {
  Flip(56 + 8 + 2);  // record 1's offset in the index
  auto s = OpenOrDie(fs_);
  EXPECT_TRUE(s->corrupt_records().empty());
  EXPECT_EQ(s->size(), 5u);
}

TEST_F(StoreDamage, DamagedHeaderUsesItsCopy) {
  Flip(12);  // generation
  auto s = OpenOrDie(fs_);
  EXPECT_EQ(s->size(), 5u);
}

TEST_F(StoreDamage, HeaderAndCopyDamagedIsDataLoss) {
  Bytes b = snap_;
  b[12] ^= 1;
  b[b.size() - 10] ^= 1;
  fs_.SetContents(kPath, b);
  auto s = SesKeysStore::Open(fs_, kPath, Keys(), kOwner);
  EXPECT_EQ(s.status().code(), StatusCode::kDataLoss);
}

TEST_F(StoreDamage, TruncatedSnapshotReportsWhatIsLost) {
  // Cut inside record 4: the index finds records 1-3, 4 and 5 are reported.
  Bytes b(snap_.begin(), snap_.begin() + RecordOffset(snap_, 3) + 10);
  fs_.SetContents(kPath, b);
  auto s = OpenOrDie(fs_);
  ASSERT_TRUE(s);
  EXPECT_EQ(StateOf(*s), (State{{1, 1}, {2, 2}, {3, 3}}));
  EXPECT_EQ(s->corrupt_records().size(), 2u);
  // Cut inside the index: one report for everything that cannot be found.
  b.resize(60);
  fs_.SetContents(kPath, b);
  s = OpenOrDie(fs_);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->size(), 0u);
  ASSERT_EQ(s->corrupt_records().size(), 1u);
  EXPECT_EQ(s->corrupt_records()[0].status.code(), StatusCode::kDataLoss);
}

TEST_F(StoreDamage, WrongKeysOwnerOrTypeRefused) {
  EXPECT_EQ(SesKeysStore::Open(fs_, kPath, Keys(9), kOwner).status().code(),
            StatusCode::kDataLoss);
  SymmetricKeys wrong_nk{Keys(9).RawEncKeyBytes().Clone(),
                         Keys().RawMacKeyBytes().Clone()};
  auto s = SesKeysStore::Open(fs_, kPath, wrong_nk, kOwner);
  // NKsign is right, so the headers verify; every record fails (NK check).
  ASSERT_TRUE(s.ok());
  EXPECT_EQ((*s)->size(), 0u);
  EXPECT_EQ((*s)->corrupt_records().size(), 5u);
  s->reset();
  EXPECT_FALSE(SesKeysStore::Open(fs_, kPath, Keys(), kOwner + 1).ok());
  auto nd = NodeDescStore::Open(fs_, kPath, Keys(), kOwner);
  EXPECT_EQ(nd.status().code(), StatusCode::kInvalidArgument);
}

// ---------------------------------------------------------------- loading

// Options that verify on `threads` threads even for a few records.
StoreOptions Threads(unsigned threads) {
  StoreOptions o;
  o.verify_threads = threads;
  o.parallel_verify_min_records = 1;
  return o;
}

// What Open made of a store: readable state and the reports.
struct Loaded {
  State state;
  std::vector<std::string> reports;  // "index key message"
};

Loaded LoadWith(FakeFileSystem& fs, const StoreOptions& o) {
  Loaded l;
  auto s = SesKeysStore::Open(fs, kPath, Keys(), kOwner, o);
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  if (!s.ok()) return l;
  l.state = StateOf(**s);
  for (const CorruptRecord& c : (*s)->corrupt_records()) {
    l.reports.push_back(std::to_string(c.index) + " " +
                        (c.claimed_key ? std::to_string(*c.claimed_key) : "-") +
                        " " + std::string(c.status.message()));
  }
  return l;
}

TEST(StoreLoad, ParallelVerificationReportsEachCorruptRecord) {
  FakeFileSystem fs;
  constexpr uint32_t kN = 300;
  {
    auto s = OpenOrDie(fs);
    auto b = s->NewBatch();
    for (uint32_t i = 1; i <= kN; ++i) ASSERT_TRUE(b.Put(Ses(i, i)).ok());
    ASSERT_TRUE(s->Apply(std::move(b)).ok());
    ASSERT_TRUE(s->file().Compact().ok());
  }
  Bytes snap = Read(fs, kPath);
  // Damage records at both ends and at every chunk boundary of 2-4 threads.
  const std::vector<size_t> bad = {0, 74, 75, 99, 100, 149, 150, 224, 225, 299};
  for (size_t i : bad) snap[RecordOffset(snap, i) + 4 + 30] ^= 0x40;
  fs.SetContents(kPath, snap);
  Loaded one = LoadWith(fs, Threads(1));
  ASSERT_EQ(one.reports.size(), bad.size());
  EXPECT_EQ(one.state.size(), kN - bad.size());
  for (size_t j = 0; j < bad.size(); ++j) {
    EXPECT_EQ(one.reports[j],
              std::to_string(bad[j]) + " " + std::to_string(bad[j] + 1) +
                  " ses_keys record " + std::to_string(bad[j] + 1) +
                  " (snapshot #" + std::to_string(bad[j]) +
                  "): verification failed (verification failed)");
  }
  for (const auto& [k, v] : one.state) EXPECT_EQ(k, v);
  for (unsigned t : {0u, 2u, 3u, 4u, 7u, 1000u}) {
    SCOPED_TRACE("threads " + std::to_string(t));
    Loaded many = LoadWith(fs, Threads(t));
    EXPECT_EQ(many.state, one.state);
    EXPECT_EQ(many.reports, one.reports);
  }
  // Nothing unverified is served, by any accessor.
  auto s = SesKeysStore::Open(fs, kPath, Keys(), kOwner, Threads(2));
  ASSERT_TRUE(s.ok());
  for (size_t i : bad) {
    uint32_t key = static_cast<uint32_t>(i + 1);
    EXPECT_EQ((*s)->Get(key).status().code(), StatusCode::kDataLoss);
    EXPECT_EQ((*s)->file().Get(key).status().code(), StatusCode::kDataLoss);
    EXPECT_FALSE((*s)->Contains(key));
  }
  EXPECT_EQ((*s)->List().size(), kN - bad.size());
  for (const auto& [key, rec] : (*s)->file().Snapshot())
    EXPECT_TRUE(VerifyRecord(rec, RecordType::kSesKey, Keys(), kOwner).ok());
}

TEST_F(StoreDamage, EveryByteFlippedWithParallelVerification) {
  // As EveryByteOfTheSnapshotFlipped, and the same outcome on 1 and 3
  // threads.
  for (size_t i = 0; i < snap_.size(); ++i) {
    SCOPED_TRACE("byte " + std::to_string(i));
    Flip(i);
    auto one = SesKeysStore::Open(fs_, kPath, Keys(), kOwner, Threads(1));
    auto three = SesKeysStore::Open(fs_, kPath, Keys(), kOwner, Threads(3));
    ASSERT_EQ(one.ok(), three.ok());
    if (!one.ok()) {
      EXPECT_EQ(one.status().code(), three.status().code());
      continue;
    }
    EXPECT_EQ(StateOf(**one), StateOf(**three));
    ASSERT_EQ((*one)->corrupt_records().size(),
              (*three)->corrupt_records().size());
    for (size_t j = 0; j < (*one)->corrupt_records().size(); ++j) {
      EXPECT_EQ((*one)->corrupt_records()[j].status.message(),
                (*three)->corrupt_records()[j].status.message());
    }
    State got = StateOf(**three);
    EXPECT_EQ(got.size() + (*three)->corrupt_records().size(), 5u);
    for (const auto& [k, v] : got) EXPECT_EQ(k, v);
  }
}

TEST(StoreLoad, EmptyOrHeaderOnlySnapshot) {
  FakeFileSystem fs;
  { ASSERT_TRUE(OpenOrDie(fs)); }  // an empty store: header, tag, footer
  Bytes snap = Read(fs, kPath);
  EXPECT_EQ(LoadWith(fs, Threads(2)).state.size(), 0u);
  // An empty file has no header to verify: the store cannot be trusted.
  fs.SetContents(kPath, Bytes());
  EXPECT_EQ(SesKeysStore::Open(fs, kPath, Keys(), kOwner).status().code(),
            StatusCode::kDataLoss);
  fs.SetContents(kPath, Bytes(snap.begin(), snap.begin() + 20));
  EXPECT_EQ(SesKeysStore::Open(fs, kPath, Keys(), kOwner).status().code(),
            StatusCode::kDataLoss);
}

TEST(StoreLoad, TruncatedAtEveryLength) {
  FakeFileSystem fs;
  {
    auto s = OpenOrDie(fs);
    for (uint32_t i = 1; i <= 5; ++i) ASSERT_TRUE(s->Put(Ses(i, i)).ok());
    ASSERT_TRUE(s->file().Compact().ok());
  }
  const Bytes snap = Read(fs, kPath);
  for (size_t cut = 0; cut < snap.size(); ++cut) {
    SCOPED_TRACE("cut at " + std::to_string(cut));
    fs.SetContents(kPath, Bytes(snap.begin(), snap.begin() + cut));
    auto s = SesKeysStore::Open(fs, kPath, Keys(), kOwner, Threads(2));
    if (!s.ok()) {
      EXPECT_EQ(s.status().code(), StatusCode::kDataLoss);
      continue;
    }
    // What is served is intact and a prefix; the rest is reported (a cut
    // in the footer, a copy of the header, loses nothing).
    State got = StateOf(**s);
    for (const auto& [k, v] : got) EXPECT_EQ(k, v);
    EXPECT_EQ(got.empty() ? 0u : got.rbegin()->first, got.size());
    EXPECT_EQ((*s)->corrupt_records().empty(), got.size() == 5);
    for (const CorruptRecord& c : (*s)->corrupt_records())
      EXPECT_EQ(c.status.code(), StatusCode::kDataLoss);
  }
}

// A snapshot of `records` in the format of docs/storage.md 2.1, with valid
// header and index tags (as a buggy or older writer could leave it).
Bytes BuildSnapshot(const std::vector<Bytes>& records, uint64_t generation) {
  const SymmetricKeys keys = Keys();
  Bytes fields;
  ByteWriter fw(&fields);
  fw.Str("KGRS");
  fw.U8(1);
  fw.U8(static_cast<uint8_t>(RecordType::kSesKey));
  fw.U16(0);
  fw.U32(kOwner);
  fw.U64(generation);
  fw.U32(static_cast<uint32_t>(records.size()));
  Tag header_tag =
      *HmacSha256(keys.RawMacKeyBytes(), {AsBytes("KGR-SHD1"), fields});
  Bytes index;
  ByteWriter iw(&index);
  size_t off = fields.size() + kTagSize + records.size() * 8 + kTagSize;
  for (const Bytes& r : records) {
    iw.U32(static_cast<uint32_t>(off));
    iw.U32(static_cast<uint32_t>(r.size()));
    off += 4 + r.size();
  }
  Tag index_tag =
      *HmacSha256(keys.RawMacKeyBytes(), {AsBytes("KGR-SIX1"), fields, index});
  Bytes out;
  ByteWriter w(&out);
  w.Raw(fields);
  w.Raw(header_tag);
  w.Raw(index);
  w.Raw(index_tag);
  for (const Bytes& r : records) {
    w.U32(static_cast<uint32_t>(r.size()));
    w.Raw(r);
  }
  w.Raw(fields);
  w.Raw(header_tag);
  return out;
}

TEST(StoreLoad, UnorderedAndDuplicateKeysFirstOneWins) {
  auto sealed = [](uint32_t key, uint64_t value) {
    return *EncodeRecord(Ses(key, value), Keys(), kOwner);
  };
  for (unsigned threads : {1u, 2u, 3u}) {
    SCOPED_TRACE("threads " + std::to_string(threads));
    FakeFileSystem fs;
    { ASSERT_TRUE(OpenOrDie(fs)); }
    Bytes log = Read(fs, kLog);  // generation 1, empty
    fs.SetContents(kPath, BuildSnapshot({sealed(5, 5), sealed(3, 3),
                                         sealed(5, 55), sealed(1, 1)},
                                        1));
    fs.SetContents(kLog, log);
    auto s = SesKeysStore::Open(fs, kPath, Keys(), kOwner, Threads(threads));
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    EXPECT_EQ(StateOf(**s), (State{{1, 1}, {3, 3}, {5, 5}}));
    EXPECT_EQ((*s)->List(), (std::vector<uint32_t>{1, 3, 5}));
    auto bad = (*s)->corrupt_records();
    ASSERT_EQ(bad.size(), 1u);
    EXPECT_EQ(bad[0].index, 2u);
    EXPECT_EQ(bad[0].claimed_key, 5u);
    EXPECT_NE(bad[0].status.message().find("duplicate key"), std::string::npos);
    // Written back in key order, the duplicate carried along (last).
    ASSERT_TRUE((*s)->Put(Ses(2, 2)).ok());
    ASSERT_TRUE((*s)->file().Compact().ok());
    s->reset();
    s = SesKeysStore::Open(fs, kPath, Keys(), kOwner, Threads(threads));
    ASSERT_TRUE(s.ok());
    EXPECT_EQ(StateOf(**s), (State{{1, 1}, {2, 2}, {3, 3}, {5, 5}}));
    ASSERT_EQ((*s)->corrupt_records().size(), 1u);
    EXPECT_EQ((*s)->corrupt_records()[0].index, 4u);
  }
}

TEST(StoreMemory, ChangesOverTheLoadedSnapshot) {
  FakeFileSystem fs;
  StoreOptions o = Threads(2);
  o.compact_after_entries = 1000;
  auto s = OpenOrDie(fs, o);
  for (uint32_t i = 1; i <= 5; ++i) ASSERT_TRUE(s->Put(Ses(i * 10, i)).ok());
  ASSERT_TRUE(s->file().Compact().ok());
  s.reset();
  s = OpenOrDie(fs, o);  // records 10..50 now come from the snapshot
  ASSERT_TRUE(s->Put(Ses(5, 105)).ok());   // before all of them
  ASSERT_TRUE(s->Put(Ses(30, 130)).ok());  // replaces one
  ASSERT_TRUE(s->Put(Ses(35, 135)).ok());  // between two
  ASSERT_TRUE(s->Put(Ses(99, 199)).ok());  // after all
  ASSERT_TRUE(s->Delete(20).ok());
  ASSERT_TRUE(s->Delete(21).ok());         // absent
  ASSERT_TRUE(s->Delete(99).ok());         // added, then deleted
  ASSERT_TRUE(s->Put(Ses(20, 120)).ok());  // deleted, then back
  ASSERT_TRUE(s->Delete(50).ok());
  const State want = {{5, 105},  {10, 1},   {20, 120},
                      {30, 130}, {35, 135}, {40, 4}};
  auto check = [&](const SesKeysStore& st) {
    EXPECT_EQ(StateOf(st), want);
    EXPECT_EQ(st.size(), want.size());
    EXPECT_EQ(st.List(), (std::vector<uint32_t>{5, 10, 20, 30, 35, 40}));
    for (uint32_t k : {5u, 10u, 20u, 30u, 35u, 40u}) {
      EXPECT_TRUE(st.Contains(k));
      EXPECT_EQ(st.Get(k)->ctime_unix_ms, want.at(k));
    }
    for (uint32_t k : {21u, 50u, 99u}) {
      EXPECT_FALSE(st.Contains(k));
      EXPECT_EQ(st.Get(k).status().code(), StatusCode::kNotFound);
    }
  };
  check(*s);
  s.reset();
  s = OpenOrDie(fs, o);  // snapshot + journal
  check(*s);
  ASSERT_TRUE(s->file().Compact().ok());  // folded into a new snapshot
  check(*s);
  ASSERT_TRUE(s->Put(Ses(10, 110)).ok());
  ASSERT_TRUE(s->Delete(10).ok());
  ASSERT_TRUE(s->Put(Ses(10, 1)).ok());
  check(*s);
  s.reset();
  s = OpenOrDie(fs, o);
  check(*s);
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

TEST(StoreKinds, NodeDescAndGenKeysStores) {
  FakeFileSystem fs;
  auto nodes = NodeDescStore::Open(fs, "ks/node_desc", Keys(), kOwner);
  auto gens = GenKeysStore::Open(fs, "ks/gen_keys", Keys(), kOwner);
  ASSERT_TRUE(nodes.ok() && gens.ok());
  NodeDesc d;
  d.n_id = 0xabcdef01;
  d.ntag = SecretBytes(kRecordNtagSize);
  d.allowed_peers = {1, 2};
  ASSERT_TRUE((*nodes)->Put(d).ok());
  GenKey g;
  g.request_id = 0xffffffffffffff01;
  g.n_id1 = 1;
  g.n_id2 = 2;
  g.nnsk = Keys(5);
  ASSERT_TRUE((*gens)->Put(g).ok());
  nodes->reset();
  gens->reset();
  nodes = NodeDescStore::Open(fs, "ks/node_desc", Keys(), kOwner);
  gens = GenKeysStore::Open(fs, "ks/gen_keys", Keys(), kOwner);
  ASSERT_TRUE(nodes.ok() && gens.ok());
  EXPECT_EQ((*nodes)->Get(0xabcdef01)->allowed_peers,
            (std::vector<uint32_t>{1, 2}));
  EXPECT_EQ((*gens)->Get(0xffffffffffffff01)->n_id2, 2u);
  EXPECT_EQ((*gens)->List(), (std::vector<uint64_t>{0xffffffffffffff01}));
}

// ----------------------------------------------------------------
// decoded records (StoreOptions::decoded_records)

StoreOptions Decoded(size_t n) {
  StoreOptions o;
  o.decoded_records = n;
  return o;
}

// The memo is only used while the stored bytes are the ones it opened: a
// record written behind the typed store's back (through its RecordFile) is
// read as written, never as remembered.
TEST(StoreDecoded, RecordReplacedUnderneathIsReadAsStored) {
  for (size_t n : {size_t{0}, size_t{1}, size_t{1024}}) {
    SCOPED_TRACE(n);
    FakeFileSystem fs;
    auto s = OpenOrDie(fs, Decoded(n));
    ASSERT_TRUE(s);
    ASSERT_TRUE(s->Put(Ses(1, 10)).ok());
    ASSERT_EQ(s->Get(1)->ctime_unix_ms, 10u);  // remembered by Put and Get
    auto sealed = EncodeRecord(Ses(1, 11), Keys(), kOwner);
    ASSERT_TRUE(sealed.ok());
    ASSERT_TRUE(s->file().Put(1, *sealed).ok());
    auto got = s->Get(1);
    ASSERT_TRUE(got.ok());
    EXPECT_EQ(got->ctime_unix_ms, 11u);
    EXPECT_TRUE(
        got->nnsk.RawEncKeyBytes().Equals(Ses(1, 11).nnsk.RawEncKeyBytes()));
    ASSERT_TRUE(s->file().Delete(1).ok());
    EXPECT_EQ(s->Get(1).status().code(), StatusCode::kNotFound);
  }
}

// More records than the memo holds, rewritten, deleted, read in every order:
// every Get returns what the store holds, whatever the memo's size.
TEST(StoreDecoded, AnySizeReadsWhatIsStored) {
  for (size_t n : {size_t{0}, size_t{1}, size_t{3}, size_t{1024}}) {
    SCOPED_TRACE(n);
    FakeFileSystem fs;
    auto s = OpenOrDie(fs, Decoded(n));
    ASSERT_TRUE(s);
    State want;
    uint64_t value = 1;
    for (int round = 0; round < 4; ++round) {
      for (uint32_t peer = 1; peer <= 8; ++peer) {
        if ((peer + round) % 5 == 0) {
          s->DeleteUnsynced(peer);
          want.erase(peer);
        } else if ((peer + round) % 3 == 0) {
          s->PutUnsynced(Ses(peer, ++value));
          want[peer] = value;
        } else {
          ASSERT_TRUE(s->Put(Ses(peer, ++value)).ok());
          want[peer] = value;
        }
      }
      for (uint32_t peer = 8; peer >= 1; --peer) {
        auto got = s->Get(peer);
        if (want.count(peer) == 0) {
          EXPECT_EQ(got.status().code(), StatusCode::kNotFound) << peer;
          continue;
        }
        ASSERT_TRUE(got.ok()) << peer;
        EXPECT_EQ(got->ctime_unix_ms, want[peer]);
        EXPECT_TRUE(got->nnsk.RawEncKeyBytes().Equals(
            Ses(peer, want[peer]).nnsk.RawEncKeyBytes()));
      }
    }
    EXPECT_EQ(StateOf(*s), want);
  }
}

// A record sealed for a write that failed is not read back as stored.
TEST(StoreDecoded, FailedPutLeavesTheStoredRecord) {
  FakeFileSystem fs;
  StoreOptions o = Plain();
  o.decoded_records = 16;
  auto s = OpenOrDie(fs, o);
  ASSERT_TRUE(s);
  ASSERT_TRUE(s->Put(Ses(1, 10)).ok());
  size_t used = 0;
  for (const auto& f : fs.ListFiles()) used += Read(fs, f).size();
  fs.SetCapacity(used + 40);  // a record does not fit
  EXPECT_EQ(s->Put(Ses(1, 11)).code(), StatusCode::kResourceExhausted);
  fs.SetCapacity(std::nullopt);
  EXPECT_EQ(s->Get(1)->ctime_unix_ms, 10u);
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

// ---------------------------------------------------------------- POSIX

TEST(StorePosix, RealFilesAreMode0600AndSurviveReopen) {
  char tmpl[] = "/tmp/kgr_store_test.XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  std::string dir = tmpl;
  std::string path = dir + "/sub/ses_keys";
  {
    auto s = SesKeysStore::Open(*DefaultFileSystem(), path, Keys(), kOwner);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    for (uint32_t i = 0; i < 5; ++i) ASSERT_TRUE((*s)->Put(Ses(i, i)).ok());
    ASSERT_TRUE((*s)->file().Compact().ok());
    ASSERT_TRUE((*s)->Put(Ses(9, 9)).ok());
  }
  auto s = SesKeysStore::Open(*DefaultFileSystem(), path, Keys(), kOwner);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ((*s)->size(), 6u);
  for (const std::string& f : {path, path + ".log"}) {
    struct stat st;
    ASSERT_EQ(::stat(f.c_str(), &st), 0) << f;
    EXPECT_EQ(st.st_mode & 0777, 0600u) << f;
  }
  struct stat st;
  ASSERT_EQ(::stat((dir + "/sub").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
  s->reset();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace kgr
