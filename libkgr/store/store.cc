// RecordFile: snapshot + journal store of sealed records (docs/storage.md).
#include "kgr/store.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <limits>
#include <utility>

namespace kgr {
namespace {

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
      options_(options) {}

RecordFile::~RecordFile() {
  if (journal_) (void)journal_->Close();
}

StatusOr<std::unique_ptr<RecordFile>> RecordFile::Open(
    FileSystem& fs, const std::string& path, RecordType type,
    const RecordKeys& keys, uint32_t owner_n_id, const StoreOptions& options) {
  if (path.empty()) return InvalidArgumentError("store: empty path");
  if (!keys.valid()) return InvalidArgumentError("store: need NK and NKsign");
  std::unique_ptr<RecordFile> f(
      new RecordFile(fs, path, type, keys.Clone(), owner_n_id, options));
  Status s = f->Load();
  if (!s.ok()) return s.Annotate(path);
  return f;
}

std::string RecordFile::RecordName(uint64_t key) const {
  return std::string(RecordTypeName(type_)) + " record " + std::to_string(key);
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
  KGR_ASSIGN_OR_RETURN(Bytes snapshot, fs_.ReadFile(path_));
  KGR_RETURN_IF_ERROR(LoadSnapshot(snapshot));
  bool rewrite = true;
  if (have_journal) {
    KGR_ASSIGN_OR_RETURN(Bytes journal, fs_.ReadFile(log_path_));
    KGR_RETURN_IF_ERROR(ReplayJournal(journal, &rewrite));
  } else {
    spdlog::warn("store {}: journal missing, starting a new one", path_);
  }
  if (rewrite) {
    // Reads can be served without it (a full disk, say): the next write
    // retries the rewrite before appending (needs_rewrite_ stays set).
    Status s = Rewrite(false);
    if (!s.ok())
      spdlog::error("store {}: rewrite deferred: {}", path_, s.ToString());
    return OkStatus();
  }
  KGR_ASSIGN_OR_RETURN(journal_,
                       fs_.NewAppendableFile(log_path_, options_.file_mode));
  return OkStatus();
}

Status RecordFile::LoadSnapshot(const Bytes& file) {
  std::span<const uint8_t> all(file);
  // The header, or its copy at the end of the file.
  auto parse_header =
      [&](size_t at) -> std::optional<std::span<const uint8_t>> {
    if (at + kSnapshotHeaderSize > all.size()) return std::nullopt;
    std::span<const uint8_t> h = all.subspan(at, kSnapshotHeaderSize);
    if (!VerifyHmacSha256(
             keys_.mac,
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
    index_ok = VerifyHmacSha256(keys_.mac,
                                {Label(kSnapshotIndexContext), *header, index},
                                all.subspan(index_at + index_size, kTagSize))
                   .ok();
  }
  if (!index_ok)
    spdlog::warn("store {}: snapshot index damaged, scanning records", path_);

  size_t scan = records_at;  // sequential position when the index is bad
  bool scan_lost = !index_ok && records_at > all.size();
  for (uint32_t i = 0; i < count; ++i) {
    std::optional<std::span<const uint8_t>> rec;
    if (index_ok) {
      ByteReader ir(
          all.subspan(index_at + size_t{i} * kIndexEntrySize, kIndexEntrySize));
      uint32_t off, len, inline_len;
      ir.U32(&off);
      ir.U32(&len);
      ByteReader lr(all.subspan(std::min<size_t>(off, all.size())));
      if (len <= kMaxRecordSize && uint64_t{off} + 4 + len <= all.size() &&
          lr.U32(&inline_len) && inline_len == len) {
        rec = all.subspan(size_t{off} + 4, len);
      }
    } else if (!scan_lost) {
      ByteReader lr(all.subspan(scan));
      uint32_t len;
      if (lr.U32(&len) && len <= kMaxRecordSize &&
          scan + 4 + len <= all.size()) {
        rec = all.subspan(scan + 4, len);
        scan += 4 + size_t{len};
      } else {
        scan_lost = true;  // no way to find the following records
      }
    }
    if (!rec && scan_lost) {
      // Without index or framing the rest cannot be located: one report.
      CorruptEntry c;
      c.info.index = i;
      c.info.status =
          DataLossError(std::string(RecordTypeName(type_)) + " records #" +
                        std::to_string(i) + ".." + std::to_string(count - 1) +
                        " of the snapshot: unreadable");
      spdlog::error("store {}: {}", path_, c.info.status.message());
      corrupt_.push_back(std::move(c));
      break;
    }
    Status s = InvalidArgumentError("unreadable framing");
    if (rec) {
      StatusOr<uint64_t> key = VerifyRecord(*rec, type_, keys_, owner_);
      if (key.ok() && records_.count(*key) == 0) {
        records_.emplace(*key, Bytes(rec->begin(), rec->end()));
        continue;
      }
      s = key.ok() ? InvalidArgumentError("duplicate key") : key.status();
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
  generation_ = generation;
  return OkStatus();
}

Status RecordFile::ReplayJournal(const Bytes& file, bool* rewrite) {
  std::span<const uint8_t> all(file);
  *rewrite = false;
  if (all.size() < kJournalHeaderSize ||
      !VerifyHmacSha256(
           keys_.mac,
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
    p.status = VerifyHmacSha256(keys_.mac, {ctx, body.first(len - kTagSize)},
                                body.last(kTagSize));
    if (p.status.ok() && (flags & ~kEntryCommit) == 0 &&
        (kind == kEntryPut || (kind == kEntryDelete && record.empty()))) {
      p.commit = (flags & kEntryCommit) != 0;
      if (kind == kEntryPut) {
        StatusOr<uint64_t> key = VerifyRecord(record, type_, keys_, owner_);
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
  size_t tail = all.size() - committed_end;
  if (tail > kMaxCommitGroupBytes + 4 + kMaxEntryBody) {
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
      const Parsed& q = entries[j];
      if (q.ok) {
        ApplyOpLocked(q.key, q.record);
        continue;
      }
      // Fail closed: the key's latest state is unknown.
      records_.erase(*q.claimed_key);
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
  return OkStatus();
}

// ---------------------------------------------------------------- writing

void RecordFile::ApplyOpLocked(uint64_t key,
                               const std::optional<Bytes>& record) {
  corrupt_.erase(std::remove_if(corrupt_.begin(), corrupt_.end(),
                                [key](const CorruptEntry& c) {
                                  return c.info.claimed_key == key;
                                }),
                 corrupt_.end());
  if (record) {
    records_[key] = *record;
  } else {
    records_.erase(key);
  }
}

StatusOr<Bytes> RecordFile::EncodeSnapshot(uint64_t generation,
                                           bool drop_corrupt) const {
  std::vector<const Bytes*> recs;
  recs.reserve(records_.size() + corrupt_.size());
  for (const auto& [key, rec] : records_) recs.push_back(&rec);
  if (!drop_corrupt) {
    for (const CorruptEntry& c : corrupt_) {
      if (c.info.source == CorruptRecord::Source::kSnapshot)
        recs.push_back(&c.raw);
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
      HmacSha256(keys_.mac, {Label(kSnapshotHeaderContext), header_fields}));
  w.Raw(tag);
  size_t index_at = out.size();
  size_t off = index_at + recs.size() * kIndexEntrySize + kTagSize;
  for (const Bytes* r : recs) {
    w.U32(static_cast<uint32_t>(off));
    w.U32(static_cast<uint32_t>(r->size()));
    off += 4 + r->size();
  }
  if (off + kSnapshotHeaderSize > std::numeric_limits<uint32_t>::max()) {
    return ResourceExhaustedError("store larger than 4 GiB");
  }
  KGR_ASSIGN_OR_RETURN(
      Tag index_tag,
      HmacSha256(keys_.mac, {Label(kSnapshotIndexContext), header_fields,
                             std::span<const uint8_t>(out).subspan(index_at)}));
  w.Raw(index_tag);
  for (const Bytes* r : recs) {
    w.U32(static_cast<uint32_t>(r->size()));
    w.Raw(*r);
  }
  w.Raw(header_fields);
  w.Raw(tag);
  return out;
}

Status RecordFile::Rewrite(bool drop_corrupt) {
  Bytes snapshot;
  uint64_t generation;
  {
    std::lock_guard<std::mutex> l(mu_);
    generation = generation_ + 1;
    KGR_ASSIGN_OR_RETURN(snapshot, EncodeSnapshot(generation, drop_corrupt));
    // From here until the new journal is open, the old journal must not be
    // appended to: its generation may already be stale on disk.
    generation_ = generation;
    needs_rewrite_ = true;
  }
  if (journal_) {
    (void)journal_->Close();
    journal_.reset();
  }
  KGR_RETURN_IF_ERROR(fs_.WriteFileAtomic(path_, snapshot, options_.file_mode));
  Bytes header;
  ByteWriter w(&header);
  w.Str(std::string_view(kJournalMagic, 4));
  w.U8(kFormatVersion);
  w.U8(static_cast<uint8_t>(type_));
  w.U16(0);
  w.U32(owner_);
  w.U64(generation);
  KGR_ASSIGN_OR_RETURN(
      Tag tag, HmacSha256(keys_.mac, {Label(kJournalHeaderContext), header}));
  w.Raw(tag);
  KGR_RETURN_IF_ERROR(
      fs_.WriteFileAtomic(log_path_, header, options_.file_mode));
  KGR_ASSIGN_OR_RETURN(std::unique_ptr<WritableFile> journal,
                       fs_.NewAppendableFile(log_path_, options_.file_mode));
  std::lock_guard<std::mutex> l(mu_);
  journal_ = std::move(journal);
  needs_rewrite_ = false;
  next_seq_ = 1;
  journal_entries_ = 0;
  journal_bytes_ = header.size();
  if (drop_corrupt) corrupt_.clear();
  return OkStatus();
}

Status RecordFile::CheckBatch(const RecordBatch& batch,
                              size_t* encoded_size) const {
  size_t total = 0;
  for (const RecordBatch::Op& op : batch.ops_) {
    if (op.record) {
      StatusOr<uint64_t> key = VerifyRecord(*op.record, type_, keys_, owner_);
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

  size_t n_ops = 0;
  for (Writer* g : group) n_ops += g->batch->ops_.size();
  Bytes buf;
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
          HmacSha256(keys_.mac,
                     {ctx, std::span<const uint8_t>(buf).subspan(at + 4)}));
      w.Raw(tag);
      uint32_t len = static_cast<uint32_t>(buf.size() - at - 4);
      for (int i = 0; i < 4; ++i)
        buf[at + i] = static_cast<uint8_t>(len >> (24 - 8 * i));
    }
  }

  bool sync = false;
  for (Writer* g : group) sync = sync || g->sync;
  lock->unlock();
  Status s = journal_->Append(buf);
  if (s.ok() && sync) s = journal_->Sync();
  if (!s.ok()) {
    // The journal may now end in a partial group, or (fsync error) in a
    // group of unknown durability: never append after it. Replace both
    // files with the in-memory (old) state now, or before the next write.
    spdlog::error("store {}: journal write failed: {}", path_, s.ToString());
    Status r = Rewrite(false);
    if (!r.ok())
      spdlog::error("store {}: rewrite after failure: {}", path_, r.ToString());
    lock->lock();
    return s;
  }
  lock->lock();
  for (Writer* g : group) {
    for (const RecordBatch::Op& op : g->batch->ops_)
      ApplyOpLocked(op.key, op.record);
  }
  next_seq_ = seq;
  journal_entries_ += n_ops;
  journal_bytes_ += buf.size();
  if (journal_entries_ > options_.compact_after_entries ||
      journal_bytes_ > options_.compact_after_bytes) {
    lock->unlock();
    Status c = Rewrite(false);  // the group is durable whatever happens here
    if (!c.ok())
      spdlog::warn("store {}: compaction failed: {}", path_, c.ToString());
    lock->lock();
  }
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
  auto it = records_.find(key);
  if (it != records_.end()) return it->second;
  for (const CorruptEntry& c : corrupt_) {
    if (c.info.claimed_key == key) return Failed(RecordName(key));
  }
  return NotFoundError(RecordName(key) + ": not found");
}

std::vector<uint64_t> RecordFile::Keys() const {
  std::lock_guard<std::mutex> l(mu_);
  std::vector<uint64_t> keys;
  keys.reserve(records_.size());
  for (const auto& [key, rec] : records_) keys.push_back(key);
  return keys;
}

std::vector<std::pair<uint64_t, Bytes>> RecordFile::Snapshot() const {
  std::lock_guard<std::mutex> l(mu_);
  return {records_.begin(), records_.end()};
}

size_t RecordFile::Count() const {
  std::lock_guard<std::mutex> l(mu_);
  return records_.size();
}

bool RecordFile::Contains(uint64_t key) const {
  std::lock_guard<std::mutex> l(mu_);
  return records_.count(key) != 0;
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
  KGR_ASSIGN_OR_RETURN(Bytes sealed,
                       EncodeRecord(record, store_->keys_, store_->owner_));
  batch_.Put(record.key(), std::move(sealed));
  return OkStatus();
}

template <typename R>
StatusOr<std::unique_ptr<TypedStore<R>>> TypedStore<R>::Open(
    FileSystem& fs, const std::string& path, const RecordKeys& keys,
    uint32_t owner_n_id, const StoreOptions& options) {
  KGR_ASSIGN_OR_RETURN(
      std::unique_ptr<RecordFile> file,
      RecordFile::Open(fs, path, R::kType, keys, owner_n_id, options));
  return std::unique_ptr<TypedStore<R>>(
      new TypedStore<R>(std::move(file), keys.Clone(), owner_n_id));
}

template <typename R>
StatusOr<R> TypedStore<R>::Get(Key key) const {
  KGR_ASSIGN_OR_RETURN(Bytes sealed, file_->Get(key));
  StatusOr<R> r = DecodeRecord<R>(sealed, keys_, owner_);
  if (!r.ok()) {
    return DataLossError(std::string(RecordTypeName(R::kType)) + " record " +
                         std::to_string(key) + ": " + kVerificationFailed);
  }
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
  Batch b = NewBatch();
  Status s = b.Put(record);
  if (!s.ok()) {
    spdlog::warn("store {}: {}", file_->path(), s.ToString());
    return;
  }
  file_->ApplyUnsynced(std::move(b.batch_));
}

template <typename R>
void TypedStore<R>::DeleteUnsynced(Key key) {
  RecordBatch b;
  b.Delete(key);
  file_->ApplyUnsynced(std::move(b));
}

template <typename R>
Status TypedStore<R>::Delete(Key key) {
  return file_->Delete(key);
}

template <typename R>
Status TypedStore<R>::Apply(Batch batch) {
  if (batch.store_ != this)
    return InvalidArgumentError("batch of another store");
  return file_->Apply(std::move(batch.batch_));
}

template <typename R>
std::vector<typename TypedStore<R>::Key> TypedStore<R>::List() const {
  std::vector<Key> out;
  for (uint64_t k : file_->Keys()) out.push_back(static_cast<Key>(k));
  return out;
}

template <typename R>
void TypedStore<R>::ForEach(const std::function<void(const R&)>& fn) const {
  for (const auto& [key, sealed] : file_->Snapshot()) {
    StatusOr<R> r = DecodeRecord<R>(sealed, keys_, owner_);
    if (!r.ok()) {  // verified when loaded: memory corruption or a bug
      spdlog::error("store {}: {} record {}: {}", file_->path(),
                    RecordTypeName(R::kType), key, kVerificationFailed);
      continue;
    }
    fn(*r);
  }
}

template class TypedStore<NodeDesc>;
template class TypedStore<GenKey>;
template class TypedStore<SesKey>;

}  // namespace kgr
