// RecordFile: snapshot + journal store of sealed records (docs/storage.md):
// opening, the group commit of writers and reads.
#include "store/record_file.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <utility>

#include "kgr/store.h"
#include "store/format.h"

namespace kgr {

RecordKeys PreparedCopy(const RecordKeys& keys) {
  RecordKeys copy = keys.Clone();
  if (copy.valid() && !copy.prepared()) {
    Status st = copy.Prepare();
    if (!st.ok()) spdlog::warn("store: keys not prepared: {}", st.ToString());
  }
  return copy;
}

struct RecordFileImpl::Writer {
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

RecordFileImpl::RecordFileImpl(FileSystem& fs, std::string path,
                               RecordType type, RecordKeys keys, uint32_t owner,
                               const StoreOptions& options)
    : fs_(fs),
      path_(std::move(path)),
      log_path_(path_ + ".log"),
      type_(type),
      keys_(std::move(keys)),
      owner_(owner),
      options_(options),
      codec_(keys_, owner_) {}

RecordFileImpl::~RecordFileImpl() {
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

StatusOr<std::unique_ptr<RecordFileImpl>> RecordFileImpl::Open(
    FileSystem& fs, const std::string& path, RecordType type,
    const RecordKeys& keys, uint32_t owner_n_id, const StoreOptions& options) {
  if (path.empty()) return InvalidArgumentError("store: empty path");
  if (!keys.valid()) return InvalidArgumentError("store: need NK and NKsign");
  std::unique_ptr<RecordFileImpl> f(new RecordFileImpl(
      fs, path, type, PreparedCopy(keys), owner_n_id, options));
  Status s = f->Load();
  if (!s.ok()) return s.Annotate(path);
  return f;
}

std::string RecordFileImpl::RecordName(uint64_t key) const {
  return RecordNameOf(type_, key);
}

// ---------------------------------------------------------------- loading

Status RecordFileImpl::Load() {
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
      path_, count_, read_ms, verify_ms, ms_since(t0));
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

// ---------------------------------------------------------------- writing

void RecordFileImpl::ApplyOpLocked(uint64_t key, std::optional<Bytes> record) {
  corrupt_.erase(std::remove_if(corrupt_.begin(), corrupt_.end(),
                                [key](const CorruptEntry& c) {
                                  return c.info.claimed_key == key;
                                }),
                 corrupt_.end());
  SetLocked(key, std::move(record));
}

const RecordFileImpl::BaseEntry* RecordFileImpl::FindBaseLocked(
    uint64_t key) const {
  auto it = std::lower_bound(
      base_.begin(), base_.end(), key,
      [](const BaseEntry& e, uint64_t k) { return e.key < k; });
  return it != base_.end() && it->key == key ? &*it : nullptr;
}

std::optional<std::span<const uint8_t>> RecordFileImpl::FindLocked(
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

void RecordFileImpl::SetLocked(uint64_t key, std::optional<Bytes> record) {
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

Status RecordFileImpl::Rewrite(bool drop_corrupt) {
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
  WriteFileHeader(w, kJournalMagic, type_, owner_, generation);
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

Status RecordFileImpl::CheckBatch(const RecordBatch& batch,
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

Status RecordFileImpl::Submit(Writer* w) {
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

Status RecordFileImpl::WriteGroup(const std::vector<Writer*>& group,
                                  std::unique_lock<std::mutex>* lock) {
  if (needs_rewrite_ || !journal_) {
    lock->unlock();
    Status s = Rewrite(false);
    lock->lock();
    if (!s.ok()) return s;
  }
  const Bytes ctx = JournalEntryContext(owner_, type_, generation_);

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
      // The group is atomic: its last entry commits it.
      KGR_RETURN_IF_ERROR(AppendJournalEntry(
          keys_, ctx, seq++, op.key, op.record, done_ops == n_ops, &buf));
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

Status RecordFileImpl::ApplyImpl(RecordBatch batch, bool sync) {
  if (batch.empty()) return OkStatus();
  Writer w;
  w.batch = &batch;
  w.sync = sync;
  KGR_RETURN_IF_ERROR(CheckBatch(batch, &w.encoded_size));
  return Submit(&w);
}

Status RecordFileImpl::SubmitRewrite(bool drop_corrupt) {
  Writer w;
  w.kind = drop_corrupt ? Writer::Kind::kDropCorrupt : Writer::Kind::kCompact;
  return Submit(&w);
}

// ---------------------------------------------------------------- RecordFile

RecordFile::RecordFile(std::unique_ptr<RecordFileImpl> impl)
    : impl_(std::move(impl)) {}
RecordFile::~RecordFile() = default;

StatusOr<std::unique_ptr<RecordFile>> RecordFile::Open(
    FileSystem& fs, const std::string& path, RecordType type,
    const RecordKeys& keys, uint32_t owner_n_id, const StoreOptions& options) {
  KGR_ASSIGN_OR_RETURN(
      std::unique_ptr<RecordFileImpl> impl,
      RecordFileImpl::Open(fs, path, type, keys, owner_n_id, options));
  return std::unique_ptr<RecordFile>(new RecordFile(std::move(impl)));
}

Status RecordFile::Apply(RecordBatch batch) {
  return impl_->ApplyImpl(std::move(batch), /*sync=*/true);
}

void RecordFile::ApplyUnsynced(RecordBatch batch) {
  Status s = impl_->ApplyImpl(std::move(batch), /*sync=*/false);
  if (!s.ok())
    spdlog::warn("store {}: unsynced write failed: {}", path(), s.ToString());
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

Status RecordFile::Compact() { return impl_->SubmitRewrite(false); }

Status RecordFile::DropCorrupt() { return impl_->SubmitRewrite(true); }

StatusOr<Bytes> RecordFile::Get(uint64_t key) const {
  std::lock_guard<std::mutex> l(impl_->mu_);
  if (auto rec = impl_->FindLocked(key)) return Bytes(rec->begin(), rec->end());
  for (const RecordFileImpl::CorruptEntry& c : impl_->corrupt_) {
    if (c.info.claimed_key == key) return Failed(impl_->RecordName(key));
  }
  return NotFoundError(impl_->RecordName(key) + ": not found");
}

std::vector<uint64_t> RecordFile::Keys() const {
  std::lock_guard<std::mutex> l(impl_->mu_);
  std::vector<uint64_t> keys;
  keys.reserve(impl_->count_);
  impl_->ForEachLocked(
      [&](uint64_t key, std::span<const uint8_t>) { keys.push_back(key); });
  return keys;
}

std::vector<std::pair<uint64_t, Bytes>> RecordFile::Snapshot() const {
  std::lock_guard<std::mutex> l(impl_->mu_);
  std::vector<std::pair<uint64_t, Bytes>> out;
  out.reserve(impl_->count_);
  impl_->ForEachLocked([&](uint64_t key, std::span<const uint8_t> rec) {
    out.emplace_back(key, Bytes(rec.begin(), rec.end()));
  });
  return out;
}

size_t RecordFile::Count() const {
  std::lock_guard<std::mutex> l(impl_->mu_);
  return impl_->count_;
}

bool RecordFile::Contains(uint64_t key) const {
  std::lock_guard<std::mutex> l(impl_->mu_);
  return impl_->FindLocked(key).has_value();
}

std::vector<CorruptRecord> RecordFile::corrupt_records() const {
  std::lock_guard<std::mutex> l(impl_->mu_);
  std::vector<CorruptRecord> out;
  for (const RecordFileImpl::CorruptEntry& c : impl_->corrupt_)
    out.push_back(c.info);
  return out;
}

RecordType RecordFile::type() const { return impl_->type_; }
uint32_t RecordFile::owner_n_id() const { return impl_->owner_; }
const std::string& RecordFile::path() const { return impl_->path_; }

uint64_t RecordFile::generation() const {
  std::lock_guard<std::mutex> l(impl_->mu_);
  return impl_->generation_;
}

uint64_t RecordFile::journal_entries() const {
  std::lock_guard<std::mutex> l(impl_->mu_);
  return impl_->journal_entries_;
}

}  // namespace kgr
