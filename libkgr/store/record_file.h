// Internal to libkgr/store: RecordFile's implementation (kgr/store.h holds
// the contracts). Its methods live in record_file.cc (open, group commit,
// reads), snapshot.cc and journal.cc.
#ifndef KGR_STORE_RECORD_FILE_H_
#define KGR_STORE_RECORD_FILE_H_

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "kgr/store.h"

namespace kgr {

// RecordFile's state and its work: the records in memory, the journal,
// the queue of writers of the group commit.
class RecordFileImpl {
 public:
  // RecordFile (record_file.cc) serves the reads itself, under mu_.
  static StatusOr<std::unique_ptr<RecordFileImpl>> Open(
      FileSystem& fs, const std::string& path, RecordType type,
      const RecordKeys& keys, uint32_t owner_n_id, const StoreOptions& options);
  ~RecordFileImpl();
  RecordFileImpl(const RecordFileImpl&) = delete;
  RecordFileImpl& operator=(const RecordFileImpl&) = delete;

  // Applies `batch` (see RecordFile::Apply), with an fdatasync if `sync`.
  Status ApplyImpl(RecordBatch batch, bool sync);
  // Compacts (see RecordFile::Compact, DropCorrupt) as a writer of the
  // queue, between commit groups.
  Status SubmitRewrite(bool drop_corrupt);

  // A record that failed verification (also what snapshot.cc reports).
  struct CorruptEntry {
    CorruptRecord info;
    Bytes raw;  // snapshot records only: carried into new snapshots
  };

  // A readable record of the base: base_buf_[offset, offset + size).
  struct BaseEntry {
    uint64_t key;
    uint32_t offset;
    uint32_t size;
  };

 private:
  friend class RecordFile;  // reads the records under mu_
  struct Writer;

  RecordFileImpl(FileSystem& fs, std::string path, RecordType type,
                 RecordKeys keys, uint32_t owner, const StoreOptions& options);

  Status Load();
  // Takes `file` as the base: base_ points into it (no copy per record).
  Status LoadSnapshot(Bytes file);
  Status ReplayJournal(const Bytes& file, bool* rewrite);
  Status CheckBatch(const RecordBatch& batch, size_t* encoded_size) const;
  Status Submit(Writer* w);
  Status WriteGroup(const std::vector<Writer*>& group,
                    std::unique_lock<std::mutex>* lock);
  // Writes `buf` at the journal's end (growing its preallocated space if
  // needed) and, if `sync`, fdatasyncs. Called with mu_ released by the
  // leader writer.
  Status WriteJournal(std::span<const uint8_t> buf, bool sync);
  // Zeros for the journal's preallocated space (or nothing: option 0).
  Bytes Preallocation() const;
  // Writes snapshot generation_+1 from memory and a fresh journal; the new
  // snapshot becomes the in-memory base. Called by the leader writer (or
  // Open) with mu_ released.
  Status Rewrite(bool drop_corrupt);
  // The snapshot file of the current records; `entries` receives where
  // each readable record lies in it (a base over the result).
  StatusOr<Bytes> EncodeSnapshot(uint64_t generation, bool drop_corrupt,
                                 std::vector<BaseEntry>* entries) const;
  // Makes `record` (nullopt: nothing) the record of `key` and forgets the
  // corrupt records claiming it.
  void ApplyOpLocked(uint64_t key, std::optional<Bytes> record);
  // The readable record of `key`, if any (a view valid while mu_ is held
  // and the records are unchanged).
  std::optional<std::span<const uint8_t>> FindLocked(uint64_t key) const;
  const BaseEntry* FindBaseLocked(uint64_t key) const;
  // Makes `record` (nullopt: nothing) the record of `key`; keeps count_.
  void SetLocked(uint64_t key, std::optional<Bytes> record);
  // Calls fn(key, sealed record) for every readable record, ascending.
  template <typename Fn>
  void ForEachLocked(Fn&& fn) const;
  std::string RecordName(uint64_t key) const;

  FileSystem& fs_;
  const std::string path_;
  const std::string log_path_;
  const RecordType type_;
  const RecordKeys keys_;
  const uint32_t owner_;
  const StoreOptions options_;
  const RecordCodec codec_;  // of keys_, owner_

  mutable std::mutex mu_;
  // Guarded by mu_. The readable records are base_ (sorted by key, unique;
  // views into base_buf_, the snapshot last read, whose records were all
  // verified, or last encoded from memory) overlaid with changes_ (a put:
  // the record; a delete of a key in base_: nullopt) made since then;
  // count_ of them in all. Only Open and the leader writer change them, and
  // a rewrite folds changes_ into a new base.
  Bytes base_buf_;
  std::vector<BaseEntry> base_;
  std::map<uint64_t, std::optional<Bytes>> changes_;
  size_t count_ = 0;
  std::vector<CorruptEntry> corrupt_;
  std::deque<Writer*> writers_;
  // Owned by the writer at writers_.front() (and by Open); read under mu_.
  uint64_t generation_ = 0;
  uint64_t next_seq_ = 1;
  uint64_t journal_entries_ = 0;  // written or waiting in unsynced_
  uint64_t journal_bytes_ = 0;    // written: the next entry goes here
  uint64_t journal_size_ = 0;     // of the file: preallocated beyond bytes_
  Bytes unsynced_;  // encoded entries of unsynced batches, not yet written
  std::unique_ptr<RandomWriteFile> journal_;
  bool needs_rewrite_ = false;  // the journal may hold garbage: rewrite first
};

template <typename Fn>
void RecordFileImpl::ForEachLocked(Fn&& fn) const {
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

}  // namespace kgr

#endif  // KGR_STORE_RECORD_FILE_H_
