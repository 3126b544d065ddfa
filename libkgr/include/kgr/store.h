// Durable, crash-safe files of sealed records (see records.h): node_desc and
// gen_keys on the KS, ses_keys on a node. Format and crash-safety argument:
// docs/storage.md.
//
// A store at `path` is two files, both mode 0600:
//   path      a snapshot (all records at some generation), only ever replaced
//             atomically (temp file, fsync, rename, fsync of the directory);
//   path.log  an append-only journal of put/delete entries made since that
//             snapshot, each MAC'd, appended in commit groups with ONE
//             fdatasync per group.
// Open loads the snapshot, verifying every record (on several threads for
// a large one), and replays the journal. When the journal grows past
// StoreOptions' bounds it is folded into a new snapshot (compaction).
//
// Memory: the records stay sealed, in the snapshot buffer as read (or as
// last written), plus the records changed since then; no copy per record.
// A typed store also keeps up to StoreOptions::decoded_records records it
// last decoded or sealed, in the clear, to serve Get without opening them
// again (the process holds NK anyway, so this exposes nothing new).
//
// Guarantees:
//  * A successful Put/Delete/Apply is durable. A batch is all-or-nothing,
//    also across a crash.
//  * A failed one (RESOURCE_EXHAUSTED for a full disk, INTERNAL for EIO...)
//    is not applied in memory and the previous durable state stays intact;
//    the store then rewrites its files before the next write. (Only if the
//    failure was an fdatasync error AND the process dies before that
//    rewrite may the batch still appear after a restart: an fsync error
//    leaves the outcome unknown.)
//  * A record that fails verification in the snapshot, or a committed
//    journal entry that does, makes only that record unreadable: it is
//    listed in corrupt_records(), Get returns DATA_LOSS for its key, every
//    other record is served. A torn entry at the end of the journal (a crash
//    during an append) is discarded with a warning.
//  * Open fails with DATA_LOSS when the store as a whole cannot be trusted:
//    snapshot header and its copy both fail verification (also: wrong
//    NK/NKsign or another owner's file), a journal without its snapshot, or a
//    damaged journal that cannot be told apart from tampering.
//
// Thread safety: RecordFile and the typed stores are thread-safe. Concurrent
// writers are group-committed (LevelDB style): while one thread syncs, the
// batches of the others queue up and go to disk together with one fdatasync.
#ifndef KGR_STORE_H_
#define KGR_STORE_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "kgr/bytes.h"
#include "kgr/filesystem.h"
#include "kgr/metrics.h"
#include "kgr/records.h"
#include "kgr/status.h"

namespace kgr {

struct StoreOptions {
  // Compact when the journal holds more entries or bytes than this.
  uint32_t compact_after_entries = 4096;
  uint64_t compact_after_bytes = 4 << 20;
  // Upper bound of one commit group (several queued batches).
  size_t max_group_bytes = 1 << 20;
  // Zeros written ahead of the journal's end, so that appends overwrite
  // allocated blocks and fdatasync writes no metadata (0: plain appends).
  // Grows by this much when used up; skipped when the disk is full.
  size_t journal_preallocate_bytes = 256 << 10;
  int file_mode = 0600;
  // Mode of the directory, created if missing.
  int dir_mode = 0700;
  // Open verifies the snapshot's records on up to this many threads, the
  // caller's included (0: std::thread::hardware_concurrency(), at most 4;
  // never more than 64), when it holds at least `parallel_verify_min_records`
  // records. Every record is verified before Open returns, whatever the
  // setting, and the result (records served, corrupt_records()) is the same.
  unsigned verify_threads = 0;
  size_t parallel_verify_min_records = 4096;
  // TypedStore: Get serves a record it decoded or sealed before, while the
  // stored bytes are still exactly those, from memory (no AES, HMAC or
  // parse); up to this many records (0: every Get opens the sealed record).
  // For records read over and over by one procedure (a key's steps).
  size_t decoded_records = 1024;
};

// Hard bound of one commit group, whatever the options (also the largest
// journal tail a crash can tear; see docs/storage.md).
inline constexpr size_t kMaxCommitGroupBytes = 4 << 20;
// Unsynced batches wait in memory, up to this many encoded bytes, and are
// written with the next write (see RecordFile::ApplyUnsynced).
inline constexpr size_t kMaxUnsyncedBytes = 64 << 10;

// A record that failed verification when the store was opened.
struct CorruptRecord {
  enum class Source { kSnapshot, kJournal };
  Source source = Source::kSnapshot;
  // Position: record number in the snapshot, or entry number in the journal.
  uint64_t index = 0;
  // The key the damaged bytes claim: UNVERIFIED, for the operator only.
  std::optional<uint64_t> claimed_key;
  Status status;  // why it was rejected
};

// Put/delete operations applied together (atomically) by RecordFile::Apply.
class RecordBatch {
 public:
  // `sealed_record` is an EncodeRecord() output whose key is `key`.
  void Put(uint64_t key, Bytes sealed_record);
  void Delete(uint64_t key);
  size_t size() const { return ops_.size(); }
  bool empty() const { return ops_.empty(); }

 private:
  friend class RecordFileImpl;
  template <typename R>
  friend class TypedStore;
  struct Op {
    uint64_t key;
    std::optional<Bytes> record;  // nullopt: delete
  };
  std::vector<Op> ops_;
  // Every record was sealed by the TypedStore of this file just now (same
  // keys, owner and key): RecordFile need not verify them again.
  bool sealed_by_store_ = false;
};

class RecordFileImpl;

// The generic file of sealed records of one RecordType, keyed by uint64.
class RecordFile {
 public:
  // Opens (or creates, with its directory) the store at `path` holding
  // records of `type` for node `owner_n_id`, sealed under `keys` (NK,
  // NKsign; copied). `fs` must outlive the store.
  static StatusOr<std::unique_ptr<RecordFile>> Open(
      FileSystem& fs, const std::string& path, RecordType type,
      const RecordKeys& keys, uint32_t owner_n_id,
      const StoreOptions& options = {});
  ~RecordFile();
  RecordFile(const RecordFile&) = delete;
  RecordFile& operator=(const RecordFile&) = delete;

  // The sealed record of `key`: NOT_FOUND if absent, DATA_LOSS
  // "<type> record <key>: verification failed" if it is corrupt.
  StatusOr<Bytes> Get(uint64_t key) const;
  // Verifies `sealed_record` (type, owner, keys, key == `key`) and makes it
  // durable. INVALID_ARGUMENT / DATA_LOSS for a bad record.
  Status Put(uint64_t key, Bytes sealed_record);
  // Removes `key` durably (also a corrupt record claiming it). OK if absent.
  Status Delete(uint64_t key);
  // Applies all operations of `batch` in order, atomically, with one sync
  // (shared with concurrent callers). INVALID_ARGUMENT if a record is bad or
  // the batch exceeds kMaxCommitGroupBytes; nothing is applied then.
  Status Apply(RecordBatch batch);
  // Like Apply, but without waiting for an fdatasync: the batch is applied
  // in memory at once and its journal entries wait in memory (up to
  // kMaxUnsyncedBytes) to be written with the next write; it becomes durable
  // with the next synced write or compaction, and a crash of the process or
  // the machine before that may lose it (whole). Closing the store writes
  // it (unsynced). For advisory data (usage counters) and steps the protocol
  // repeats. Errors are logged, not returned.
  void ApplyUnsynced(RecordBatch batch);

  // Keys of the readable records, ascending.
  std::vector<uint64_t> Keys() const;
  // (key, sealed record) of every readable record, ascending.
  std::vector<std::pair<uint64_t, Bytes>> Snapshot() const;
  size_t Count() const;
  bool Contains(uint64_t key) const;
  std::vector<CorruptRecord> corrupt_records() const;

  // Writes a new snapshot and an empty journal now.
  Status Compact();
  // Forgets the corrupt records (they are otherwise carried verbatim into
  // every new snapshot, to be reported again) and compacts.
  Status DropCorrupt();

  RecordType type() const;
  uint32_t owner_n_id() const;
  const std::string& path() const;
  // Generation of the current snapshot (grows by one per compaction).
  uint64_t generation() const;
  // Entries in the current journal.
  uint64_t journal_entries() const;

 private:
  explicit RecordFile(std::unique_ptr<RecordFileImpl> impl);
  // The state, the files and the group commit: libkgr/store/record_file.h.
  std::unique_ptr<RecordFileImpl> impl_;
};

// A RecordFile of one record type R (NodeDesc, GenKey, SesKey) that seals
// and opens records itself. Thread-safe.
template <typename R>
class TypedStore {
 public:
  using Key = typename R::Key;

  class Batch {
   public:
    // Seals `record` now (fails only for a bad field or RNG failure).
    Status Put(const R& record);
    void Delete(Key key) { batch_.Delete(key); }
    size_t size() const { return batch_.size(); }

   private:
    friend class TypedStore;
    explicit Batch(const TypedStore* store) : store_(store) {
      batch_.sealed_by_store_ = true;
    }
    const TypedStore* store_;
    RecordBatch batch_;
  };

  static StatusOr<std::unique_ptr<TypedStore>> Open(
      FileSystem& fs, const std::string& path, const RecordKeys& keys,
      uint32_t owner_n_id, const StoreOptions& options = {});

  // NOT_FOUND, or DATA_LOSS "<type> record <key>: verification failed".
  StatusOr<R> Get(Key key) const;
  Status Put(const R& record);
  // Puts all `records` atomically with one sync.
  Status PutAll(const std::vector<R>& records);
  // Put and Delete without waiting for an fdatasync: durable with the next
  // synced write, may be lost (whole) by a crash before that (see
  // RecordFile::ApplyUnsynced); errors are logged. For what a crash may
  // lose: usage counters, or steps the protocol repeats (docs/storage.md).
  // Get, Contains and size see them at once. They are sealed only when
  // they go to the file: ahead of the next synced write, of List, ForEach,
  // corrupt_records and file(), when the store is closed, or when
  // kMaxPendingRecords wait. A later write of the same key replaces a
  // waiting one, which is then never sealed (a counter updated per frame, a
  // key's steps 3 and 6).
  void PutUnsynced(const R& record);
  void DeleteUnsynced(Key key);
  Status Delete(Key key);
  Batch NewBatch() const { return Batch(this); }
  Status Apply(Batch batch);

  std::vector<Key> List() const;
  size_t size() const { return Count(); }
  size_t Count() const;
  bool Contains(Key key) const;
  // Calls `fn` for every readable record in key order, on a consistent
  // snapshot of the store taken first (fn may call the store). Corrupt
  // records are not visited (see corrupt_records()).
  void ForEach(const std::function<void(const R&)>& fn) const;
  std::vector<CorruptRecord> corrupt_records() const {
    FlushPending();
    return file_->corrupt_records();
  }
  RecordFile& file() {
    FlushPending();
    return *file_;
  }
  ~TypedStore();

 private:
  // The memo of decoded records and the unsynced writes not sealed yet,
  // with their locks: typed_store.cc.
  struct State;

  TypedStore(std::unique_ptr<RecordFile> file, RecordKeys keys, uint32_t owner,
             size_t decoded_records);

  void Remember(Key key, Bytes sealed, const R& record) const;
  void Forget(Key key) const;
  // Seals the waiting unsynced writes (but those of `keep`) and hands them
  // to the file as one unsynced batch. Reads flush too, hence const.
  void FlushPending() const;
  // With State::pending_mu held.
  void FlushPendingLocked(const std::vector<Key>& keep) const;

  std::unique_ptr<RecordFile> file_;
  const RecordKeys keys_;    // referred to by codec_
  const RecordCodec codec_;  // of keys_ and the owner
  const size_t decoded_capacity_;
  const std::unique_ptr<State> state_;
};

// Unsynced writes of a typed store waiting to be sealed, at most.
inline constexpr size_t kMaxPendingRecords = 64;

extern template class TypedStore<NodeDesc>;
extern template class TypedStore<GenKey>;
extern template class TypedStore<SesKey>;
extern template class TypedStore<GroupRecord>;
extern template class TypedStore<GroupDesc>;

using NodeDescStore = TypedStore<NodeDesc>;  // KS: node_desc
using GenKeysStore = TypedStore<GenKey>;     // KS: gen_keys
using SesKeysStore = TypedStore<SesKey>;     // node: ses_keys
using GroupStore = TypedStore<GroupRecord>;  // node: grp_keys
using GroupDescStore = TypedStore<GroupDesc>;    // KS: groups

// Every journal fdatasync of this process's stores, in seconds (the metric
// kgr_store_fsync_seconds). Thread-safe (Histogram).
Histogram& StoreFsyncSeconds();

}  // namespace kgr

#endif  // KGR_STORE_H_
