// RecordFile (record_file.cc): a crash at every step of every write, and
// failing disk operations.

#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <memory>
#include <vector>

#include "store/store_test_util.h"

namespace kgr::store_test {
namespace {

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

}  // namespace
}  // namespace kgr::store_test
