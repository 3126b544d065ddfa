// Snapshots (snapshot.cc, format.cc): damaged or odd snapshots, parallel
// verification on load, changes over the loaded snapshot.

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "store/store_test_util.h"

namespace kgr::store_test {
namespace {

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

}  // namespace
}  // namespace kgr::store_test
