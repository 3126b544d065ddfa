// RecordFile: snapshot + journal store of sealed records (docs/storage.md).
#include "kgr/store.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <limits>
#include <system_error>
#include <thread>
#include <utility>

namespace kgr {
namespace {

// The store's own copy of NK/NKsign, prepared (AES key schedule and HMAC
// pads once): every record and journal entry uses them.
RecordKeys PreparedCopy(const RecordKeys& keys) {
  RecordKeys copy = keys.Clone();
  if (copy.valid() && !copy.prepared) {
    Status st = copy.Prepare();
    if (!st.ok()) spdlog::warn("store: keys not prepared: {}", st.ToString());
  }
  return copy;
}

constexpr char kSnapshotMagic[] = "KGRS";
constexpr char kJournalMagic[] = "KGRL";
constexpr uint8_t kFormatVersion = 1;
// MAC domains (8 bytes each).
constexpr char kSnapshotHeaderContext[] = "KGR-SHD1";
constexpr char kSnapshotIndexContext[] = "KGR-SIX1";
constexpr char kJournalHeaderContext[] = "KGR-JHD1";
constexpr char kJournalEntryContext[] = "KGR-JNL1";

// magic, version, type, reserved, owner, generation, count
constexpr size_t kSnapshotHeaderFields = 4 + 1 + 1 + 2 + 4 + 8 + 4;
constexpr size_t kSnapshotHeaderSize = kSnapshotHeaderFields + kTagSize;
constexpr size_t kIndexEntrySize = 8;
// magic, version, type, reserved, owner, generation
constexpr size_t kJournalHeaderFields = 4 + 1 + 1 + 2 + 4 + 8;
constexpr size_t kJournalHeaderSize = kJournalHeaderFields + kTagSize;
// kind, flags, seq, key (then the record, then the tag)
constexpr size_t kEntryFixed = 1 + 1 + 8 + 8;
constexpr size_t kMinEntryBody = kEntryFixed + kTagSize;
constexpr size_t kMaxEntryBody = kMinEntryBody + kMaxRecordSize;

// Bound of StoreOptions::verify_threads.
constexpr size_t kMaxVerifyThreads = 64;

constexpr uint8_t kEntryPut = 1;
constexpr uint8_t kEntryDelete = 2;
constexpr uint8_t kEntryCommit = 0x01;

std::span<const uint8_t> Label(const char* s) {
  return AsBytes(std::string_view(s, 8));
}

Status Failed(const std::string& what) {
  return DataLossError(what + ": " + kVerificationFailed);
}

size_t EntrySize(const std::optional<Bytes>& record) {
  return 4 + kMinEntryBody + (record ? record->size() : 0);
}

}  // namespace

struct RecordFile::Writer {
  enum class Kind { kBatch, kCompact, kDropCorrupt };
  Kind kind = Kind::kBatch;
  RecordBatch* batch = nullptr;
  size_t encoded_size = 0;
  Status status;
  bool sync = true;
  bool done = false;
  std::condition_variable cv;
};

void RecordBatch::Put(uint64_t key, Bytes sealed_record) {
  ops_.push_back({key, std::move(sealed_record)});
}
void RecordBatch::Delete(uint64_t key) { ops_.push_back({key, std::nullopt}); }

RecordFile::RecordFile(FileSystem& fs, std::string path, RecordType type,
                       RecordKeys keys, uint32_t owner,
                       const StoreOptions& options)
    : fs_(fs),
      path_(std::move(path)),
      log_path_(path_ + ".log"),
      type_(type),
      keys_(std::move(keys)),
      owner_(owner),
      options_(options),
      codec_(keys_, owner_) {}

RecordFile::~RecordFile() {
  if (!journal_) return;
  // Unsynced batches reach the file (not the disk) on a clean close.
  if (!unsynced_.empty() && !needs_rewrite_) {
    Status s = WriteJournal(unsynced_, /*sync=*/false);
    if (!s.ok()) {
      spdlog::warn("store {}: unsynced entries not written: {}", path_,
                   s.ToString());
    }
  }
  (void)journal_->Close();
}

StatusOr<std::unique_ptr<RecordFile>> RecordFile::Open(
    FileSystem& fs, const std::string& path, RecordType type,
    const RecordKeys& keys, uint32_t owner_n_id, const StoreOptions& options) {
  if (path.empty()) return InvalidArgumentError("store: empty path");
  if (!keys.valid()) return InvalidArgumentError("store: need NK and NKsign");
  std::unique_ptr<RecordFile> f(
      new RecordFile(fs, path, type, PreparedCopy(keys), owner_n_id, options));
  Status s = f->Load();
  if (!s.ok()) return s.Annotate(path);
  return f;
}

namespace {
// "<type> record <key>": how errors name a record.
std::string RecordNameOf(RecordType type, uint64_t key) {
  return std::string(RecordTypeName(type)) + " record " + std::to_string(key);
}
}  // namespace

std::string RecordFile::RecordName(uint64_t key) const {
  return RecordNameOf(type_, key);
}

// ---------------------------------------------------------------- loading

Status RecordFile::Load() {
  KGR_RETURN_IF_ERROR(fs_.CreateDir(DirName(path_), options_.dir_mode));
  for (const std::string& tmp : {path_ + ".tmp", log_path_ + ".tmp"}) {
    if (fs_.Exists(tmp)) (void)fs_.Remove(tmp);  // an interrupted rewrite
  }
  bool have_snapshot = fs_.Exists(path_);
  bool have_journal = fs_.Exists(log_path_);
  if (!have_snapshot) {
    // The snapshot is created before the journal and never removed, so a
    // lone journal means the snapshot was lost: refuse to start empty.
    if (have_journal) return DataLossError("journal without snapshot");
    return Rewrite(false);  // a new, empty store (generation 1)
  }
  using Clock = std::chrono::steady_clock;
  auto ms_since = [](Clock::time_point t) {
    return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
  };
  Clock::time_point t0 = Clock::now();
  KGR_ASSIGN_OR_RETURN(Bytes snapshot, fs_.ReadFile(path_));
  const double read_ms = ms_since(t0);
  t0 = Clock::now();
  KGR_RETURN_IF_ERROR(LoadSnapshot(std::move(snapshot)));
  const double verify_ms = ms_since(t0);
  t0 = Clock::now();
  bool rewrite = true;
  if (have_journal) {
    KGR_ASSIGN_OR_RETURN(Bytes journal, fs_.ReadFile(log_path_));
    KGR_RETURN_IF_ERROR(ReplayJournal(journal, &rewrite));
  } else {
    spdlog::warn("store {}: journal missing, starting a new one", path_);
  }
  spdlog::debug(
      "store {}: {} records; snapshot read in {:.1f} ms, verified in {:.1f} "
      "ms; journal {:.1f} ms",
      path_, Count(), read_ms, verify_ms, ms_since(t0));
  if (rewrite) {
    // Reads can be served without it (a full disk, say): the next write
    // retries the rewrite before appending (needs_rewrite_ stays set).
    Status s = Rewrite(false);
    if (!s.ok())
      spdlog::error("store {}: rewrite deferred: {}", path_, s.ToString());
    return OkStatus();
  }
  KGR_ASSIGN_OR_RETURN(journal_,
                       fs_.NewRandomWriteFile(log_path_, options_.file_mode));
  return OkStatus();
}

Status RecordFile::LoadSnapshot(Bytes file) {
  std::span<const uint8_t> all(file);
  // The header, or its copy at the end of the file.
  auto parse_header =
      [&](size_t at) -> std::optional<std::span<const uint8_t>> {
    if (at + kSnapshotHeaderSize > all.size()) return std::nullopt;
    std::span<const uint8_t> h = all.subspan(at, kSnapshotHeaderSize);
    if (!VerifyHmacSha256(
             keys_,
             {Label(kSnapshotHeaderContext), h.first(kSnapshotHeaderFields)},
             h.subspan(kSnapshotHeaderFields))
             .ok()) {
      return std::nullopt;
    }
    return h.first(kSnapshotHeaderFields);
  };
  auto header = parse_header(0);
  if (!header && all.size() >= kSnapshotHeaderSize) {
    header = parse_header(all.size() - kSnapshotHeaderSize);
    if (header)
      spdlog::warn("store {}: snapshot header damaged, using its copy", path_);
  }
  if (!header) return Failed("snapshot header");
  ByteReader h(*header);
  std::span<const uint8_t> magic;
  uint8_t version, type;
  uint16_t reserved;
  uint32_t owner, count;
  uint64_t generation;
  h.View(4, &magic);
  h.U8(&version);
  h.U8(&type);
  h.U16(&reserved);
  h.U32(&owner);
  h.U64(&generation);
  h.U32(&count);
  if (!std::equal(magic.begin(), magic.end(), kSnapshotMagic) ||
      version != kFormatVersion || reserved != 0) {
    return InvalidArgumentError("snapshot: unknown format");
  }
  if (type != static_cast<uint8_t>(type_)) {
    return InvalidArgumentError(
        "snapshot holds " +
        std::string(RecordTypeName(static_cast<RecordType>(type))) +
        " records, expected " + std::string(RecordTypeName(type_)));
  }
  if (owner != owner_) {
    return InvalidArgumentError("snapshot belongs to node " +
                                std::to_string(owner));
  }

  const size_t index_at = kSnapshotHeaderSize;
  const uint64_t index_size = uint64_t{count} * kIndexEntrySize;
  const uint64_t records_at = index_at + index_size + kTagSize;
  bool index_ok = records_at <= all.size();
  if (index_ok) {
    std::span<const uint8_t> index = all.subspan(index_at, index_size);
    index_ok =
        VerifyHmacSha256(keys_, {Label(kSnapshotIndexContext), *header, index},
                         all.subspan(index_at + index_size, kTagSize))
            .ok();
  }
  if (!index_ok)
    spdlog::warn("store {}: snapshot index damaged, scanning records", path_);

  // 1. Locate the records (sequential: the scan depends on each length).
  // loc[i] is where record i is, if verdict[i] is kLocated; records from
  // `lost_from` on cannot be located at all.
  enum : uint8_t { kUnlocated, kLocated, kOk, kBad, kDuplicate };
  std::vector<BaseEntry> loc;
  std::vector<uint8_t> verdict;
  loc.reserve(std::min<uint64_t>(count, all.size() / 4));
  verdict.reserve(loc.capacity());
  size_t scan = records_at;  // sequential position when the index is bad
  bool scan_lost = !index_ok && records_at > all.size();
  std::optional<uint32_t> lost_from;
  for (uint32_t i = 0; i < count; ++i) {
    std::optional<std::pair<uint64_t, uint32_t>> rec;  // offset, length
    if (index_ok) {
      ByteReader ir(
          all.subspan(index_at + size_t{i} * kIndexEntrySize, kIndexEntrySize));
      uint32_t off, n, inline_len;
      ir.U32(&off);
      ir.U32(&n);
      ByteReader lr(all.subspan(std::min<size_t>(off, all.size())));
      if (n <= kMaxRecordSize && uint64_t{off} + 4 + n <= all.size() &&
          lr.U32(&inline_len) && inline_len == n) {
        rec.emplace(uint64_t{off} + 4, n);
      }
    } else if (!scan_lost) {
      ByteReader lr(all.subspan(scan));
      uint32_t n;
      if (lr.U32(&n) && n <= kMaxRecordSize && scan + 4 + n <= all.size()) {
        rec.emplace(scan + 4, n);
        scan += 4 + size_t{n};
      } else {
        scan_lost = true;  // no way to find the following records
      }
    }
    if (!rec && scan_lost) {
      lost_from = i;  // without index or framing the rest cannot be found
      break;
    }
    // Offsets are kept as u32: snapshots are written below 4 GiB.
    if (rec && rec->first + rec->second > std::numeric_limits<uint32_t>::max())
      rec.reset();
    loc.push_back({0, rec ? static_cast<uint32_t>(rec->first) : 0,
                   rec ? rec->second : 0});
    verdict.push_back(rec ? kLocated : kUnlocated);
  }

  // 2. Verify every located record, on several threads for a large file.
  // Worker t handles loc[begin_t, end_t): it fills in the keys of the
  // records that verify and lists the others (in order) in failures[t].
  // Each worker has its own prepared copy of the keys (HMAC pads set up
  // once; one prepared pair serves one caller at a time), released and
  // wiped when it is done.
  struct Failure {
    size_t index;
    Status status;
  };
  unsigned threads = options_.verify_threads;
  if (threads == 0)
    threads = std::min(4u, std::max(1u, std::thread::hardware_concurrency()));
  if (loc.size() < std::max<size_t>(options_.parallel_verify_min_records, 2))
    threads = 1;
  threads = static_cast<unsigned>(
      std::min<size_t>({threads, kMaxVerifyThreads, loc.size()}));
  threads = std::max(threads, 1u);
  std::vector<std::vector<Failure>> failures(threads);
  auto verify = [&](unsigned t) {
    size_t begin = loc.size() * t / threads;
    size_t end = loc.size() * (t + 1) / threads;
    if (begin == end) return;
    RecordKeys keys = keys_.Clone();
    if (!keys.Prepare().ok()) keys.prepared.reset();  // slower, same result
    const RecordCodec codec(keys, owner_);
    for (size_t i = begin; i < end; ++i) {
      if (verdict[i] != kLocated) continue;
      BaseEntry& e = loc[i];
      StatusOr<uint64_t> key =
          codec.Verify(type_, all.subspan(e.offset, e.size));
      if (key.ok()) {
        e.key = *key;
        verdict[i] = kOk;
      } else {
        verdict[i] = kBad;
        failures[t].push_back({i, key.status()});
      }
    }
  };
  std::vector<std::thread> workers;
  for (unsigned t = 1; t < threads; ++t) {
    try {
      workers.emplace_back(verify, t);
    } catch (const std::system_error& e) {  // no thread: do it here
      spdlog::warn("store {}: verifying on one thread: {}", path_, e.what());
      verify(t);
    }
  }
  verify(0);
  for (std::thread& w : workers) w.join();

  // 3. Keys: ascending and unique in a snapshot we wrote. Otherwise the
  // first record of a key (in file order) wins and the others are corrupt.
  bool ascending = true;
  {
    const BaseEntry* prev = nullptr;
    for (size_t i = 0; i < loc.size() && ascending; ++i) {
      if (verdict[i] != kOk) continue;
      ascending = prev == nullptr || loc[i].key > prev->key;
      prev = &loc[i];
    }
  }
  if (!ascending) {
    std::vector<std::pair<uint64_t, size_t>> order;
    for (size_t i = 0; i < loc.size(); ++i) {
      if (verdict[i] == kOk) order.emplace_back(loc[i].key, i);
    }
    std::sort(order.begin(), order.end());  // by key, then file order
    for (size_t j = 1; j < order.size(); ++j) {
      if (order[j].first == order[j - 1].first)
        verdict[order[j].second] = kDuplicate;
    }
  }

  // 4. Report the others in file order; the readable ones become the base.
  std::vector<Failure> failed;
  for (auto& f : failures) {
    for (auto& x : f) failed.push_back(std::move(x));
  }
  auto next_failure = failed.begin();
  size_t n_ok = 0;
  for (size_t i = 0; i < loc.size(); ++i) {
    if (verdict[i] == kOk) {
      loc[n_ok++] = loc[i];
      continue;
    }
    Status s = InvalidArgumentError("unreadable framing");
    std::optional<std::span<const uint8_t>> rec;
    if (verdict[i] != kUnlocated) rec = all.subspan(loc[i].offset, loc[i].size);
    if (verdict[i] == kDuplicate) s = InvalidArgumentError("duplicate key");
    if (verdict[i] == kBad) {
      s = std::move(next_failure->status);  // failures are in file order
      ++next_failure;
    }
    CorruptEntry c;
    c.info.source = CorruptRecord::Source::kSnapshot;
    c.info.index = i;
    if (rec) c.info.claimed_key = PeekRecordKey(*rec);
    c.info.status = DataLossError(
        (c.info.claimed_key ? RecordName(*c.info.claimed_key)
                            : std::string(RecordTypeName(type_)) + " record") +
        " (snapshot #" + std::to_string(i) + "): " + kVerificationFailed +
        " (" + s.message() + ")");
    if (rec) c.raw.assign(rec->begin(), rec->end());
    spdlog::error("store {}: {}", path_, c.info.status.message());
    corrupt_.push_back(std::move(c));
  }
  if (lost_from) {
    // Without index or framing the rest cannot be located: one report.
    CorruptEntry c;
    c.info.index = *lost_from;
    c.info.status = DataLossError(std::string(RecordTypeName(type_)) +
                                  " records #" + std::to_string(*lost_from) +
                                  ".." + std::to_string(count - 1) +
                                  " of the snapshot: unreadable");
    spdlog::error("store {}: {}", path_, c.info.status.message());
    corrupt_.push_back(std::move(c));
  }
  loc.resize(n_ok);
  loc.shrink_to_fit();
  if (!ascending) {
    std::sort(
        loc.begin(), loc.end(),
        [](const BaseEntry& a, const BaseEntry& b) { return a.key < b.key; });
  }
  std::lock_guard<std::mutex> l(mu_);
  base_buf_ = std::move(file);
  base_ = std::move(loc);
  changes_.clear();
  count_ = base_.size();
  generation_ = generation;
  return OkStatus();
}

Status RecordFile::ReplayJournal(const Bytes& file, bool* rewrite) {
  std::span<const uint8_t> all(file);
  *rewrite = false;
  if (all.size() < kJournalHeaderSize ||
      !VerifyHmacSha256(
           keys_,
           {Label(kJournalHeaderContext), all.first(kJournalHeaderFields)},
           all.subspan(kJournalHeaderFields, kTagSize))
           .ok()) {
    // Journals are created atomically, so this is damage, not a crash.
    return Failed("journal header");
  }
  ByteReader h(all.first(kJournalHeaderFields));
  std::span<const uint8_t> magic;
  uint8_t version, type;
  uint16_t reserved;
  uint32_t owner;
  uint64_t generation;
  h.View(4, &magic);
  h.U8(&version);
  h.U8(&type);
  h.U16(&reserved);
  h.U32(&owner);
  h.U64(&generation);
  if (!std::equal(magic.begin(), magic.end(), kJournalMagic) ||
      version != kFormatVersion || reserved != 0 ||
      type != static_cast<uint8_t>(type_) || owner != owner_) {
    return InvalidArgumentError("journal: unknown format, type or owner");
  }
  if (generation < generation_) {
    // A crash came between writing a new snapshot and its journal: every
    // entry of this journal is already in the snapshot.
    spdlog::info("store {}: ignoring stale journal (generation {} < {})", path_,
                 generation, generation_);
    *rewrite = true;
    return OkStatus();
  }
  if (generation > generation_)
    return DataLossError("journal newer than snapshot");

  Bytes ctx;
  ByteWriter cw(&ctx);
  cw.Raw(Label(kJournalEntryContext));
  cw.U32(owner_);
  cw.U8(static_cast<uint8_t>(type_));
  cw.U64(generation_);

  struct Parsed {
    size_t end = 0;
    bool ok = false;
    bool commit = false;
    uint64_t seq = 0;
    uint64_t key = 0;
    std::optional<Bytes> record;
    std::optional<uint64_t> claimed_key;
    Status status;
  };
  std::vector<Parsed> entries;
  size_t pos = kJournalHeaderSize;
  while (pos < all.size()) {
    ByteReader r(all.subspan(pos));
    uint32_t len;
    if (!r.U32(&len) || len < kMinEntryBody || len > kMaxEntryBody ||
        r.remaining() < len) {
      break;  // unframeable: nothing after this point can be read
    }
    std::span<const uint8_t> body = all.subspan(pos + 4, len);
    Parsed p;
    p.end = pos + 4 + len;
    ByteReader b(body);
    uint8_t kind, flags;
    b.U8(&kind);
    b.U8(&flags);
    b.U64(&p.seq);
    b.U64(&p.key);
    p.claimed_key = p.key;
    std::span<const uint8_t> record =
        body.subspan(kEntryFixed, len - kMinEntryBody);
    p.status = VerifyHmacSha256(keys_, {ctx, body.first(len - kTagSize)},
                                body.last(kTagSize));
    if (p.status.ok() && (flags & ~kEntryCommit) == 0 &&
        (kind == kEntryPut || (kind == kEntryDelete && record.empty()))) {
      p.commit = (flags & kEntryCommit) != 0;
      if (kind == kEntryPut) {
        StatusOr<uint64_t> key = codec_.Verify(type_, record);
        if (key.ok() && *key == p.key) {
          p.record = Bytes(record.begin(), record.end());
          p.ok = true;
        } else {
          p.status =
              key.ok() ? InvalidArgumentError("key mismatch") : key.status();
        }
      } else {
        p.ok = true;
      }
    } else if (p.status.ok()) {
      p.status = InvalidArgumentError("bad entry kind or flags");
    }
    entries.push_back(std::move(p));
    pos += 4 + len;
  }

  // Entries after the last valid commit marker belong to a group whose
  // append did not complete (crash): drop them. Bad entries before it were
  // committed and then damaged: report them.
  size_t committed = 0;  // number of entries in the committed prefix
  for (size_t i = entries.size(); i > 0; --i) {
    if (entries[i - 1].ok && entries[i - 1].commit) {
      committed = i;
      break;
    }
  }
  size_t committed_end =
      committed > 0 ? entries[committed - 1].end : kJournalHeaderSize;
  // Zeros at the end are preallocated space, not data.
  size_t data_end = all.size();
  while (data_end > committed_end && all[data_end - 1] == 0) --data_end;
  size_t tail = data_end - committed_end;
  // One write holds at most the waiting unsynced entries and one group.
  if (tail > kMaxUnsyncedBytes + kMaxCommitGroupBytes + 4 + kMaxEntryBody) {
    return DataLossError("journal: " + std::to_string(tail) +
                         " unreadable bytes, more than one commit group");
  }
  if (tail > 0) {
    spdlog::warn(
        "store {}: discarding {} bytes of an incomplete journal append", path_,
        tail);
    *rewrite = true;
  }
  uint64_t expected = 1;
  std::lock_guard<std::mutex> l(mu_);
  std::vector<size_t> pending;
  for (size_t i = 0; i < committed; ++i) {
    const Parsed& p = entries[i];
    if (p.ok && p.seq != expected) {
      return DataLossError("journal entry " + std::to_string(i) +
                           ": out of sequence");
    }
    ++expected;
    pending.push_back(i);
    if (!(p.ok && p.commit)) continue;
    for (size_t j : pending) {
      Parsed& q = entries[j];
      if (q.ok) {
        ApplyOpLocked(q.key, std::move(q.record));
        continue;
      }
      // Fail closed: the key's latest state is unknown.
      SetLocked(*q.claimed_key, std::nullopt);
      CorruptEntry c;
      c.info.source = CorruptRecord::Source::kJournal;
      c.info.index = j;
      c.info.claimed_key = q.claimed_key;
      c.info.status = DataLossError(
          RecordName(*q.claimed_key) + " (journal #" + std::to_string(j) +
          "): " + kVerificationFailed + " (" + q.status.message() + ")");
      spdlog::error("store {}: {}", path_, c.info.status.message());
      corrupt_.push_back(std::move(c));
    }
    pending.clear();
  }
  next_seq_ = expected;
  journal_entries_ = committed;
  journal_bytes_ = committed_end;
  journal_size_ = all.size();
  return OkStatus();
}

// ---------------------------------------------------------------- writing

void RecordFile::ApplyOpLocked(uint64_t key, std::optional<Bytes> record) {
  corrupt_.erase(std::remove_if(corrupt_.begin(), corrupt_.end(),
                                [key](const CorruptEntry& c) {
                                  return c.info.claimed_key == key;
                                }),
                 corrupt_.end());
  SetLocked(key, std::move(record));
}

const RecordFile::BaseEntry* RecordFile::FindBaseLocked(uint64_t key) const {
  auto it = std::lower_bound(
      base_.begin(), base_.end(), key,
      [](const BaseEntry& e, uint64_t k) { return e.key < k; });
  return it != base_.end() && it->key == key ? &*it : nullptr;
}

std::optional<std::span<const uint8_t>> RecordFile::FindLocked(
    uint64_t key) const {
  auto c = changes_.find(key);
  if (c != changes_.end()) {
    if (!c->second) return std::nullopt;
    return std::span<const uint8_t>(*c->second);
  }
  const BaseEntry* e = FindBaseLocked(key);
  if (e == nullptr) return std::nullopt;
  return std::span<const uint8_t>(base_buf_).subspan(e->offset, e->size);
}

void RecordFile::SetLocked(uint64_t key, std::optional<Bytes> record) {
  bool had = FindLocked(key).has_value();
  count_ += (record ? 1 : 0);
  count_ -= (had ? 1 : 0);
  if (record) {
    changes_[key] = std::move(record);
  } else if (FindBaseLocked(key) != nullptr) {
    changes_[key] = std::nullopt;  // hides the base's record
  } else {
    changes_.erase(key);
  }
}

template <typename Fn>
void RecordFile::ForEachLocked(Fn&& fn) const {
  std::span<const uint8_t> buf(base_buf_);
  auto c = changes_.begin();
  auto flush_changes_before = [&](uint64_t key, bool all) {
    for (; c != changes_.end() && (all || c->first < key); ++c) {
      if (c->second) fn(c->first, std::span<const uint8_t>(*c->second));
    }
  };
  for (const BaseEntry& e : base_) {
    flush_changes_before(e.key, false);
    if (c != changes_.end() && c->first == e.key) {
      if (c->second) fn(c->first, std::span<const uint8_t>(*c->second));
      ++c;  // replaced or deleted
      continue;
    }
    fn(e.key, buf.subspan(e.offset, e.size));
  }
  flush_changes_before(0, true);
}

StatusOr<Bytes> RecordFile::EncodeSnapshot(
    uint64_t generation, bool drop_corrupt,
    std::vector<BaseEntry>* entries) const {
  std::vector<std::pair<uint64_t, std::span<const uint8_t>>> recs;
  recs.reserve(count_ + corrupt_.size());
  ForEachLocked([&](uint64_t key, std::span<const uint8_t> rec) {
    recs.emplace_back(key, rec);
  });
  const size_t readable = recs.size();
  if (!drop_corrupt) {
    for (const CorruptEntry& c : corrupt_) {
      if (c.info.source == CorruptRecord::Source::kSnapshot)
        recs.emplace_back(0, std::span<const uint8_t>(c.raw));
    }
  }
  Bytes out;
  ByteWriter w(&out);
  w.Str(std::string_view(kSnapshotMagic, 4));
  w.U8(kFormatVersion);
  w.U8(static_cast<uint8_t>(type_));
  w.U16(0);
  w.U32(owner_);
  w.U64(generation);
  w.U32(static_cast<uint32_t>(recs.size()));
  Bytes header_fields = out;
  KGR_ASSIGN_OR_RETURN(
      Tag tag,
      HmacSha256(keys_, {Label(kSnapshotHeaderContext), header_fields}));
  w.Raw(tag);
  size_t index_at = out.size();
  size_t off = index_at + recs.size() * kIndexEntrySize + kTagSize;
  uint64_t total = off + kSnapshotHeaderSize;
  for (const auto& [key, r] : recs) total += 4 + r.size();
  if (total > std::numeric_limits<uint32_t>::max()) {
    return ResourceExhaustedError("store larger than 4 GiB");
  }
  out.reserve(total);
  entries->clear();
  entries->reserve(readable);
  for (size_t i = 0; i < recs.size(); ++i) {
    const std::span<const uint8_t> r = recs[i].second;
    w.U32(static_cast<uint32_t>(off));
    w.U32(static_cast<uint32_t>(r.size()));
    if (i < readable) {
      entries->push_back({recs[i].first, static_cast<uint32_t>(off + 4),
                          static_cast<uint32_t>(r.size())});
    }
    off += 4 + r.size();
  }
  KGR_ASSIGN_OR_RETURN(
      Tag index_tag,
      HmacSha256(keys_, {Label(kSnapshotIndexContext), header_fields,
                         std::span<const uint8_t>(out).subspan(index_at)}));
  w.Raw(index_tag);
  for (const auto& [key, r] : recs) {
    w.U32(static_cast<uint32_t>(r.size()));
    w.Raw(r);
  }
  w.Raw(header_fields);
  w.Raw(tag);
  return out;
}

Status RecordFile::Rewrite(bool drop_corrupt) {
  uint64_t generation;
  {
    std::lock_guard<std::mutex> l(mu_);
    generation = generation_ + 1;
    std::vector<BaseEntry> entries;
    KGR_ASSIGN_OR_RETURN(Bytes snapshot,
                         EncodeSnapshot(generation, drop_corrupt, &entries));
    // The new file holds exactly the current records: it becomes the base
    // (whether or not writing it succeeds) and changes_ are folded in.
    base_buf_ = std::move(snapshot);
    base_ = std::move(entries);
    changes_.clear();
    // From here until the new journal is open, the old journal must not be
    // appended to: its generation may already be stale on disk.
    generation_ = generation;
    needs_rewrite_ = true;
    unsynced_.clear();  // applied in memory, so in the new snapshot
  }
  if (journal_) {
    (void)journal_->Close();
    journal_.reset();
  }
  // base_buf_ is read without mu_: only Open and the leader writer (this
  // thread) ever replace it.
  KGR_RETURN_IF_ERROR(
      fs_.WriteFileAtomic(path_, base_buf_, options_.file_mode));
  Bytes header;
  ByteWriter w(&header);
  w.Str(std::string_view(kJournalMagic, 4));
  w.U8(kFormatVersion);
  w.U8(static_cast<uint8_t>(type_));
  w.U16(0);
  w.U32(owner_);
  w.U64(generation);
  KGR_ASSIGN_OR_RETURN(
      Tag tag, HmacSha256(keys_, {Label(kJournalHeaderContext), header}));
  w.Raw(tag);
  const size_t header_size = header.size();
  Bytes zeros = Preallocation();
  header.insert(header.end(), zeros.begin(), zeros.end());
  Status written = fs_.WriteFileAtomic(log_path_, header, options_.file_mode);
  if (written.code() == StatusCode::kResourceExhausted && !zeros.empty()) {
    // A full disk: a journal without preallocated space still works.
    header.resize(header_size);
    written = fs_.WriteFileAtomic(log_path_, header, options_.file_mode);
  }
  KGR_RETURN_IF_ERROR(written);
  KGR_ASSIGN_OR_RETURN(std::unique_ptr<RandomWriteFile> journal,
                       fs_.NewRandomWriteFile(log_path_, options_.file_mode));
  std::lock_guard<std::mutex> l(mu_);
  journal_ = std::move(journal);
  needs_rewrite_ = false;
  next_seq_ = 1;
  journal_entries_ = 0;
  journal_bytes_ = header_size;
  journal_size_ = header.size();
  if (drop_corrupt) corrupt_.clear();
  return OkStatus();
}

Status RecordFile::CheckBatch(const RecordBatch& batch,
                              size_t* encoded_size) const {
  size_t total = 0;
  for (const RecordBatch::Op& op : batch.ops_) {
    if (op.record && !batch.sealed_by_store_) {
      StatusOr<uint64_t> key = codec_.Verify(type_, *op.record);
      if (!key.ok()) return key.status().Annotate(RecordName(op.key));
      if (*key != op.key)
        return InvalidArgumentError(RecordName(op.key) + ": key mismatch");
    }
    total += EntrySize(op.record);
  }
  if (total > kMaxCommitGroupBytes)
    return InvalidArgumentError("batch too large");
  *encoded_size = total;
  return OkStatus();
}

Status RecordFile::Submit(Writer* w) {
  std::unique_lock<std::mutex> l(mu_);
  writers_.push_back(w);
  while (!w->done && w != writers_.front()) w->cv.wait(l);
  if (w->done) return w->status;
  // This thread is the leader: it writes for itself and the batches queued
  // behind it, while newer callers queue up for the next group.
  std::vector<Writer*> group{w};
  Status s;
  if (w->kind == Writer::Kind::kBatch) {
    size_t limit = std::min(options_.max_group_bytes, kMaxCommitGroupBytes);
    size_t bytes = w->encoded_size;
    for (auto it = writers_.begin() + 1; it != writers_.end(); ++it) {
      if ((*it)->kind != Writer::Kind::kBatch ||
          bytes + (*it)->encoded_size > limit)
        break;
      bytes += (*it)->encoded_size;
      group.push_back(*it);
    }
    s = WriteGroup(group, &l);
  } else {
    l.unlock();
    s = Rewrite(w->kind == Writer::Kind::kDropCorrupt);
    l.lock();
  }
  for (Writer* g : group) {
    writers_.pop_front();
    if (g != w) {
      g->status = s;
      g->done = true;
      g->cv.notify_one();
    }
  }
  if (!writers_.empty()) writers_.front()->cv.notify_one();
  return s;
}

Status RecordFile::WriteGroup(const std::vector<Writer*>& group,
                              std::unique_lock<std::mutex>* lock) {
  if (needs_rewrite_ || !journal_) {
    lock->unlock();
    Status s = Rewrite(false);
    lock->lock();
    if (!s.ok()) return s;
  }
  Bytes ctx;
  ByteWriter cw(&ctx);
  cw.Raw(Label(kJournalEntryContext));
  cw.U32(owner_);
  cw.U8(static_cast<uint8_t>(type_));
  cw.U64(generation_);

  size_t n_ops = 0, n_bytes = 0;
  for (Writer* g : group) {
    n_ops += g->batch->ops_.size();
    n_bytes += g->encoded_size;
  }
  Bytes buf;
  buf.reserve(n_bytes);
  uint64_t seq = next_seq_;
  size_t done_ops = 0;
  for (Writer* g : group) {
    for (const RecordBatch::Op& op : g->batch->ops_) {
      ++done_ops;
      size_t at = buf.size();
      ByteWriter w(&buf);
      w.U32(0);  // length, patched below
      w.U8(op.record ? kEntryPut : kEntryDelete);
      w.U8(done_ops == n_ops ? kEntryCommit : 0);  // the group is atomic
      w.U64(seq++);
      w.U64(op.key);
      if (op.record) w.Raw(*op.record);
      KGR_ASSIGN_OR_RETURN(
          Tag tag,
          HmacSha256(keys_,
                     {ctx, std::span<const uint8_t>(buf).subspan(at + 4)}));
      w.Raw(tag);
      uint32_t len = static_cast<uint32_t>(buf.size() - at - 4);
      for (int i = 0; i < 4; ++i)
        buf[at + i] = static_cast<uint8_t>(len >> (24 - 8 * i));
    }
  }

  bool sync = false;
  for (Writer* g : group) sync = sync || g->sync;
  // Nobody waits for unsynced groups: while they fit, they wait in memory
  // and go out ahead of the next write.
  const bool buffered =
      !sync && unsynced_.size() + buf.size() <= kMaxUnsyncedBytes;
  if (buffered) {
    unsynced_.insert(unsynced_.end(), buf.begin(), buf.end());
  } else {
    if (!unsynced_.empty()) {
      buf.insert(buf.begin(), unsynced_.begin(), unsynced_.end());
      unsynced_.clear();
    }
    lock->unlock();
    Status s = WriteJournal(buf, sync);
    if (!s.ok()) {
      // The journal may now end in a partial group, or (fsync error) in a
      // group of unknown durability: never append after it. Replace both
      // files with the in-memory (old) state now, or before the next write.
      spdlog::error("store {}: journal write failed: {}", path_, s.ToString());
      Status r = Rewrite(false);
      if (!r.ok())
        spdlog::error("store {}: rewrite after failure: {}", path_,
                      r.ToString());
      lock->lock();
      return s;
    }
    lock->lock();
  }
  for (Writer* g : group) {  // the batches are not used after this
    for (RecordBatch::Op& op : g->batch->ops_)
      ApplyOpLocked(op.key, std::move(op.record));
  }
  next_seq_ = seq;
  journal_entries_ += n_ops;
  if (!buffered && (journal_entries_ > options_.compact_after_entries ||
                    journal_bytes_ > options_.compact_after_bytes)) {
    lock->unlock();
    Status c = Rewrite(false);  // the group is durable whatever happens here
    if (!c.ok())
      spdlog::warn("store {}: compaction failed: {}", path_, c.ToString());
    lock->lock();
  }
  return OkStatus();
}

Bytes RecordFile::Preallocation() const {
  return Bytes(
      std::min(options_.journal_preallocate_bytes, kMaxCommitGroupBytes), 0);
}

Status RecordFile::WriteJournal(std::span<const uint8_t> buf, bool sync) {
  const uint64_t at = journal_bytes_;
  KGR_RETURN_IF_ERROR(journal_->WriteAt(at, buf));
  if (at + buf.size() > journal_size_) {
    // The preallocated space is used up: add more. Not needed for the
    // entries, so a failure (a full disk) only costs the speed-up.
    journal_size_ = at + buf.size();
    Bytes zeros = Preallocation();
    if (!zeros.empty()) {
      Status z = journal_->WriteAt(journal_size_, zeros);
      if (z.ok()) {
        journal_size_ += zeros.size();
      } else {
        spdlog::debug("store {}: no journal preallocation: {}", path_,
                      z.ToString());
      }
    }
  }
  if (sync) KGR_RETURN_IF_ERROR(journal_->Sync());
  journal_bytes_ = at + buf.size();
  return OkStatus();
}

Status RecordFile::ApplyImpl(RecordBatch batch, bool sync) {
  if (batch.empty()) return OkStatus();
  Writer w;
  w.batch = &batch;
  w.sync = sync;
  KGR_RETURN_IF_ERROR(CheckBatch(batch, &w.encoded_size));
  return Submit(&w);
}

Status RecordFile::Apply(RecordBatch batch) {
  return ApplyImpl(std::move(batch), /*sync=*/true);
}

void RecordFile::ApplyUnsynced(RecordBatch batch) {
  Status s = ApplyImpl(std::move(batch), /*sync=*/false);
  if (!s.ok())
    spdlog::warn("store {}: unsynced write failed: {}", path_, s.ToString());
}

Status RecordFile::Put(uint64_t key, Bytes sealed_record) {
  RecordBatch b;
  b.Put(key, std::move(sealed_record));
  return Apply(std::move(b));
}

Status RecordFile::Delete(uint64_t key) {
  RecordBatch b;
  b.Delete(key);
  return Apply(std::move(b));
}

Status RecordFile::Compact() {
  Writer w;
  w.kind = Writer::Kind::kCompact;
  return Submit(&w);
}

Status RecordFile::DropCorrupt() {
  Writer w;
  w.kind = Writer::Kind::kDropCorrupt;
  return Submit(&w);
}

// ---------------------------------------------------------------- reading

StatusOr<Bytes> RecordFile::Get(uint64_t key) const {
  std::lock_guard<std::mutex> l(mu_);
  if (auto rec = FindLocked(key)) return Bytes(rec->begin(), rec->end());
  for (const CorruptEntry& c : corrupt_) {
    if (c.info.claimed_key == key) return Failed(RecordName(key));
  }
  return NotFoundError(RecordName(key) + ": not found");
}

std::vector<uint64_t> RecordFile::Keys() const {
  std::lock_guard<std::mutex> l(mu_);
  std::vector<uint64_t> keys;
  keys.reserve(count_);
  ForEachLocked(
      [&](uint64_t key, std::span<const uint8_t>) { keys.push_back(key); });
  return keys;
}

std::vector<std::pair<uint64_t, Bytes>> RecordFile::Snapshot() const {
  std::lock_guard<std::mutex> l(mu_);
  std::vector<std::pair<uint64_t, Bytes>> out;
  out.reserve(count_);
  ForEachLocked([&](uint64_t key, std::span<const uint8_t> rec) {
    out.emplace_back(key, Bytes(rec.begin(), rec.end()));
  });
  return out;
}

size_t RecordFile::Count() const {
  std::lock_guard<std::mutex> l(mu_);
  return count_;
}

bool RecordFile::Contains(uint64_t key) const {
  std::lock_guard<std::mutex> l(mu_);
  return FindLocked(key).has_value();
}

std::vector<CorruptRecord> RecordFile::corrupt_records() const {
  std::lock_guard<std::mutex> l(mu_);
  std::vector<CorruptRecord> out;
  for (const CorruptEntry& c : corrupt_) out.push_back(c.info);
  return out;
}

uint64_t RecordFile::generation() const {
  std::lock_guard<std::mutex> l(mu_);
  return generation_;
}

uint64_t RecordFile::journal_entries() const {
  std::lock_guard<std::mutex> l(mu_);
  return journal_entries_;
}

// ---------------------------------------------------------------- typed

template <typename R>
Status TypedStore<R>::Batch::Put(const R& record) {
  KGR_ASSIGN_OR_RETURN(Bytes sealed, store_->codec_.Encode(record));
  if (store_->decoded_capacity_ != 0) {
    store_->Remember(record.key(), sealed, record);
  }
  batch_.Put(record.key(), std::move(sealed));
  return OkStatus();
}

template <typename R>
void TypedStore<R>::Remember(Key key, Bytes sealed, const R& record) const {
  if (decoded_capacity_ == 0) return;
  std::lock_guard<std::mutex> l(decoded_mu_);
  auto it = decoded_.find(key);
  if (it != decoded_.end()) {
    it->second = Decoded{std::move(sealed), record.Clone()};
    return;
  }
  if (decoded_.size() >= decoded_capacity_) decoded_.erase(decoded_.begin());
  decoded_.emplace(key, Decoded{std::move(sealed), record.Clone()});
}

template <typename R>
void TypedStore<R>::Forget(Key key) const {
  if (decoded_capacity_ == 0) return;
  std::lock_guard<std::mutex> l(decoded_mu_);
  decoded_.erase(key);
}

template <typename R>
StatusOr<std::unique_ptr<TypedStore<R>>> TypedStore<R>::Open(
    FileSystem& fs, const std::string& path, const RecordKeys& keys,
    uint32_t owner_n_id, const StoreOptions& options) {
  // Prepared once; the RecordFile's copy shares the same contexts.
  RecordKeys prepared = PreparedCopy(keys);
  KGR_ASSIGN_OR_RETURN(
      std::unique_ptr<RecordFile> file,
      RecordFile::Open(fs, path, R::kType, prepared, owner_n_id, options));
  return std::unique_ptr<TypedStore<R>>(
      new TypedStore<R>(std::move(file), std::move(prepared), owner_n_id,
                        options.decoded_records));
}

template <typename R>
void TypedStore<R>::FlushPending() const {
  std::lock_guard<std::mutex> l(pending_mu_);
  FlushPendingLocked({});
}

template <typename R>
void TypedStore<R>::FlushPendingLocked(const std::vector<Key>& keep) const {
  if (pending_.size() <= keep.size()) return;  // nothing else waits
  RecordBatch batch;
  batch.sealed_by_store_ = true;
  for (auto it = pending_.begin(); it != pending_.end();) {
    auto& [key, record] = *it;
    if (std::find(keep.begin(), keep.end(), key) != keep.end()) {
      ++it;
      continue;
    }
    if (!record) {
      batch.Delete(key);
    } else if (StatusOr<Bytes> sealed = codec_.Encode(*record); sealed.ok()) {
      Remember(key, *sealed, *record);
      batch.Put(key, *std::move(sealed));
    } else {
      spdlog::warn("store {}: {}", file_->path(), sealed.status().ToString());
    }
    it = pending_.erase(it);
  }
  file_->ApplyUnsynced(std::move(batch));
}

template <typename R>
size_t TypedStore<R>::Count() const {
  std::lock_guard<std::mutex> l(pending_mu_);
  size_t n = file_->Count();
  for (const auto& [key, record] : pending_) {
    bool stored = file_->Contains(key);
    if (record && !stored) ++n;
    if (!record && stored) --n;
  }
  return n;
}

template <typename R>
bool TypedStore<R>::Contains(Key key) const {
  {
    std::lock_guard<std::mutex> l(pending_mu_);
    auto it = pending_.find(key);
    if (it != pending_.end()) return it->second.has_value();
  }
  return file_->Contains(key);
}

template <typename R>
StatusOr<R> TypedStore<R>::Get(Key key) const {
  {
    std::lock_guard<std::mutex> l(pending_mu_);
    auto it = pending_.find(key);
    if (it != pending_.end()) {
      if (!it->second)
        return NotFoundError(RecordNameOf(R::kType, key) + ": not found");
      return it->second->Clone();
    }
  }
  KGR_ASSIGN_OR_RETURN(Bytes sealed, file_->Get(key));
  if (decoded_capacity_ != 0) {
    std::lock_guard<std::mutex> l(decoded_mu_);
    auto it = decoded_.find(key);
    if (it != decoded_.end() && it->second.sealed == sealed) {
      return it->second.record.Clone();
    }
  }
  StatusOr<R> r = codec_.template Decode<R>(sealed);
  if (!r.ok()) {
    return DataLossError(RecordNameOf(R::kType, key) + ": " +
                         kVerificationFailed);
  }
  Remember(key, std::move(sealed), *r);
  return r;
}

template <typename R>
Status TypedStore<R>::Put(const R& record) {
  Batch b = NewBatch();
  KGR_RETURN_IF_ERROR(b.Put(record));
  return Apply(std::move(b));
}

template <typename R>
Status TypedStore<R>::PutAll(const std::vector<R>& records) {
  Batch b = NewBatch();
  for (const R& r : records) KGR_RETURN_IF_ERROR(b.Put(r));
  return Apply(std::move(b));
}

template <typename R>
void TypedStore<R>::PutUnsynced(const R& record) {
  std::lock_guard<std::mutex> l(pending_mu_);
  pending_.insert_or_assign(record.key(), record.Clone());
  if (pending_.size() >= kMaxPendingRecords) FlushPendingLocked({});
}

template <typename R>
void TypedStore<R>::DeleteUnsynced(Key key) {
  Forget(key);
  std::lock_guard<std::mutex> l(pending_mu_);
  pending_.insert_or_assign(key, std::nullopt);
  if (pending_.size() >= kMaxPendingRecords) FlushPendingLocked({});
}

template <typename R>
Status TypedStore<R>::Delete(Key key) {
  Forget(key);
  Batch batch = NewBatch();
  batch.Delete(key);
  return Apply(std::move(batch));
}

template <typename R>
Status TypedStore<R>::Apply(Batch batch) {
  if (batch.store_ != this)
    return InvalidArgumentError("batch of another store");
  // The waiting unsynced writes go first, but for the batch's own keys:
  // those the batch replaces unsealed. They stay readable until it is
  // applied (the lock is held through the write then, so Get never sees an
  // older record) and stay waiting if it fails.
  std::unique_lock<std::mutex> l(pending_mu_);
  std::vector<Key> replaced;
  for (const RecordBatch::Op& op : batch.batch_.ops_) {
    Key key = static_cast<Key>(op.key);
    if (pending_.count(key) &&
        std::find(replaced.begin(), replaced.end(), key) == replaced.end()) {
      replaced.push_back(key);  // once: a batch may write a key twice
    }
  }
  FlushPendingLocked(replaced);
  if (replaced.empty()) l.unlock();  // concurrent writers share the sync
  Status st = file_->Apply(std::move(batch.batch_));
  if (st.ok()) {
    for (Key key : replaced) pending_.erase(key);
  }
  return st;
}

template <typename R>
std::vector<typename TypedStore<R>::Key> TypedStore<R>::List() const {
  FlushPending();
  std::vector<Key> out;
  for (uint64_t k : file_->Keys()) out.push_back(static_cast<Key>(k));
  return out;
}

template <typename R>
void TypedStore<R>::ForEach(const std::function<void(const R&)>& fn) const {
  FlushPending();
  for (const auto& [key, sealed] : file_->Snapshot()) {
    StatusOr<R> r = codec_.template Decode<R>(sealed);
    if (!r.ok()) {  // verified when loaded: memory corruption or a bug
      spdlog::error("store {}: {}: {}", file_->path(),
                    RecordNameOf(R::kType, key), kVerificationFailed);
      continue;
    }
    fn(*r);
  }
}

template class TypedStore<NodeDesc>;
template class TypedStore<GenKey>;
template class TypedStore<SesKey>;

}  // namespace kgr
