// Typed stores (typed_store.cc): put/get/delete, batches, group commit, decoded
// records, the store kinds, real POSIX files.

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "store/store_test_util.h"

namespace kgr::store_test {
namespace {

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
}  // namespace kgr::store_test
