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

// node_desc: one record per node, key N_ID.
class NodeDescTable {
 public:
  virtual ~NodeDescTable() = default;

  // NOT_FOUND; DATA_LOSS "<type> record <key>: verification failed"; on
  // etcd also UNAVAILABLE / DEADLINE_EXCEEDED when no endpoint answers.
  virtual StatusOr<NodeDesc> Get(uint32_t n_id) const = 0;
  virtual bool Contains(uint32_t n_id) const = 0;
  // Durable when OK (file: fdatasync; etcd: committed by a quorum).
  // On etcd a record another instance changed since this one read it is
  // merged, not overwritten blindly: the write wins, but its replay floors
  // (last_counter, request_floor) never go below the stored ones.
  virtual Status Put(const NodeDesc& d) = 0;
  // All of `batch` atomically (one fdatasync; one etcd txn).
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

// Both tables of one KS.
class KsState {
 public:
  virtual ~KsState() = default;
  virtual NodeDescTable& nodes() = 0;
  virtual GenKeysTable& gen_keys() = 0;
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
