// The KS's shared state, node_desc and gen_keys, behind two small
// interfaces (in the manner of LevelDB's Env), so that one KeyServer runs
// on either backend:
//   * the record files of its state directory (FileKsState, the default:
//     TypedStore, docs/storage.md), exactly as before;
//   * etcd (libkgr/cluster/, EtcdKsState), shared by the instances of a
//     cluster: the same sealed records (EncodeRecord), under a domain key
//     instead of the member's NK, at <prefix>/node_desc/<n_id> and
//     <prefix>/gen_keys/<request id> (docs/cluster.md).
//
// The method names are those of TypedStore, so that the procedures read the
// same on both. What differs between the backends is said per method.
//
// Thread safety: both backends may be called from several threads, but the
// KS calls them from its event loop only.
#ifndef KGR_KS_STATE_H_
#define KGR_KS_STATE_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "kgr/records.h"
#include "kgr/status.h"
#include "kgr/store.h"

namespace kgr {

// The view of node_desc one NodeDescTable::Update attempt works on.
class NodeDescTxn {
 public:
  virtual ~NodeDescTxn() = default;
  // The record as this attempt sees it: NOT_FOUND if absent, DATA_LOSS if
  // unreadable. The write is made only if no record read (found or not)
  // has changed when it is made.
  virtual StatusOr<NodeDesc> Get(uint32_t n_id) = 0;
  // `d` is to be written (replacing an earlier Put of the same N_ID).
  virtual void Put(NodeDesc d) = 0;
};

// Builds one change of node_desc from what it reads through `txn`. It may
// run more than once, each time on fresher records (once per conflicting
// write by another instance): it must decide only on what it reads through
// `txn` and have no effect outside what it captures and overwrites on each
// run. A non-OK status aborts: nothing is written, Update returns it.
using NodeDescChange = std::function<Status(NodeDescTxn& txn)>;

// The most records one Update may read and write on etcd (--max-txn-ops).
inline constexpr size_t kMaxUpdateRecords = 128;

// node_desc: one record per node, key N_ID.
class NodeDescTable {
 public:
  virtual ~NodeDescTable() = default;

  // NOT_FOUND; DATA_LOSS "<type> record <key>: verification failed"; on
  // etcd also UNAVAILABLE / DEADLINE_EXCEEDED when no endpoint answers.
  virtual StatusOr<NodeDesc> Get(uint32_t n_id) const = 0;
  virtual bool Contains(uint32_t n_id) const = 0;
  // A read-modify-write, the way every KS procedure changes node_desc:
  // `change` reads the records it needs and puts the ones it changes; they
  // are written together, durably, only if none of the records it read
  // changed meanwhile (etcd: one txn comparing each record's mod_revision;
  // on a conflict the records are read again and `change` runs again, up
  // to 8 times, then ABORTED). Two instances changing different fields of
  // one record thus both keep their change. The files have one writer: read,
  // change, PutAll. `written` (may be null) gets the records written, none
  // if `change` put nothing. On etcd at most kMaxUpdateRecords records
  // read or put (else INVALID_ARGUMENT; the files have no limit).
  virtual Status Update(const NodeDescChange& change,
                        std::vector<NodeDesc>* written = nullptr);
  // Durable when OK (file: fdatasync; etcd: committed by a quorum). For a
  // writer that owns the records (restore, tools, tests); the KS's
  // procedures use Update. On etcd a record another instance changed since
  // this one read it is overwritten, but its replay floors (last_counter,
  // request_floor) never go below the stored ones.
  virtual Status Put(const NodeDesc& d) = 0;
  // All of `batch` atomically (one fdatasync; one etcd txn per 128
  // records, etcd's --max-txn-ops).
  virtual Status PutAll(const std::vector<NodeDesc>& batch) = 0;
  // Ascending.
  virtual std::vector<uint32_t> List() const = 0;
  virtual size_t size() const = 0;
  // Every readable record in key order; `fn` may call the table.
  virtual void ForEach(
      const std::function<void(const NodeDesc&)>& fn) const = 0;
  virtual std::vector<CorruptRecord> corrupt_records() const = 0;
  // The N_IDs whose records another instance changed since the last call
  // (their cached copies are stale). Never any on the files.
  virtual std::vector<uint32_t> TakeChanged() { return {}; }
};

// gen_keys: the session keys under way, key request id.
class GenKeysTable {
 public:
  virtual ~GenKeysTable() = default;

  // NOT_FOUND, DATA_LOSS, on etcd UNAVAILABLE. Authoritative: on etcd a
  // record this instance does not know is read from etcd.
  virtual StatusOr<GenKey> Get(uint64_t request_id) const = 0;
  // Like Get, but answers only from what this instance holds in memory
  // (NOT_FOUND otherwise): for the hot path of a new request, whose id is
  // checked again by Create. The files hold everything: same as Get.
  virtual StatusOr<GenKey> Peek(uint64_t request_id) const {
    return Get(request_id);
  }
  // Step 2: makes the records of new request ids durable, all together
  // (one fdatasync; one etcd txn). Create-only: an id that already has a
  // record (created by another instance) is not written, and its record
  // is appended to `existing` instead (the caller answers it as a
  // retransmission). The files never report one (the KS checked with Get).
  // An error means none was written.
  virtual Status Create(const std::vector<const GenKey*>& keys,
                        std::vector<GenKey>* existing) = 0;
  // Steps the protocol repeats if they are lost (5, 7, purge): not waited
  // for (file: no fdatasync; etcd: sent with the next Flush).
  virtual void PutUnsynced(const GenKey& g) = 0;
  virtual void DeleteUnsynced(uint64_t request_id) = 0;
  // Sends the unsynced writes now (end of a batch); no-op on the files,
  // where the next synced write carries them.
  virtual void Flush() {}
  // Files: the records. Etcd: the records this instance knows (its own
  // and those it read), an estimate of the cluster's.
  virtual size_t size() const = 0;
  // Every readable record (etcd: read from etcd), in key order.
  virtual void ForEach(const std::function<void(const GenKey&)>& fn) const = 0;
  virtual std::vector<CorruptRecord> corrupt_records() const = 0;
};

// The AC channel's replay floor: the highest AC request counter any
// instance accepted, raised before the request acts, so that a captured
// AC request (an "allow" later withdrawn) never counts twice, whichever
// instance it is replayed to (docs/cluster.md).
class AcFloor {
 public:
  virtual ~AcFloor() = default;
  // 0 if none was ever stored.
  virtual StatusOr<uint64_t> Load() = 0;
  // Raises the floor to `counter`, durably (etcd: compare-and-swap on its
  // revision). ALREADY_EXISTS if it is at or above `counter` already: a
  // replay, or a request another instance accepted.
  virtual Status Raise(uint64_t counter) = 0;
};

// Both tables of one KS.
class KsState {
 public:
  virtual ~KsState() = default;
  virtual NodeDescTable& nodes() = 0;
  virtual GenKeysTable& gen_keys() = 0;
  // The shared AC floor; null on the files, where the daemon keeps it in
  // <state_dir>/ac_counter.
  virtual AcFloor* ac_floor() { return nullptr; }
  const NodeDescTable& nodes() const {
    return const_cast<KsState*>(this)->nodes();
  }
  const GenKeysTable& gen_keys() const {
    return const_cast<KsState*>(this)->gen_keys();
  }
};

// The record-file backend over two open stores (not owned; they must
// outlive it). Every call forwards to the store.
std::unique_ptr<KsState> FileKsState(NodeDescStore& nodes,
                                     GenKeysStore& gen_keys);
// The same, owning its stores.
std::unique_ptr<KsState> FileKsState(std::unique_ptr<NodeDescStore> nodes,
                                     std::unique_ptr<GenKeysStore> gen_keys);

}  // namespace kgr

#endif  // KGR_KS_STATE_H_
