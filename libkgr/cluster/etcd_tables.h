// Internal to libkgr/cluster/: the two etcd tables of EtcdKsState.
#ifndef KGR_CLUSTER_ETCD_TABLES_H_
#define KGR_CLUSTER_ETCD_TABLES_H_

#include <condition_variable>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "cluster/domain_codec.h"
#include "cluster/etcd_client.h"
#include "kgr/ks_state.h"

namespace kgr {

// etcd refuses a txn with more operations per list (--max-txn-ops, 128).
inline constexpr size_t kMaxTxnOps = 128;

std::string NodeDescKey(const std::string& prefix, uint32_t n_id);
std::string GenKeyKey(const std::string& prefix, uint64_t request_id);

// node_desc: every sealed record in memory (loaded by Load, kept current
// by Poll on another thread and by this instance's writes).
class EtcdNodeDescTable final : public NodeDescTable {
 public:
  EtcdNodeDescTable(EtcdClient& client, const DomainCodec& codec,
                    std::string prefix)
      : client_(client), codec_(codec), prefix_(std::move(prefix)) {}

  Status Load();
  // Reads the records changed since the last poll (with `poller`, the
  // polling thread's client) and notes those another instance changed.
  Status Poll(EtcdClient& poller);

  StatusOr<NodeDesc> Get(uint32_t n_id) const override;
  bool Contains(uint32_t n_id) const override;
  Status Put(const NodeDesc& d) override {
    std::vector<NodeDesc> one;
    one.push_back(d.Clone());
    return PutAll(one);
  }
  Status PutAll(const std::vector<NodeDesc>& batch) override;
  Status Update(const NodeDescChange& change,
                std::vector<NodeDesc>* written) override;
  std::vector<uint32_t> List() const override;
  size_t size() const override;
  void ForEach(const std::function<void(const NodeDesc&)>& fn) const override;
  std::vector<CorruptRecord> corrupt_records() const override;
  std::vector<uint32_t> TakeChanged() override;

 private:
  struct Entry {
    Bytes sealed;
    int64_t mod_revision = 0;
  };
  // Takes a record read from etcd (with mu_ held); false if it is older
  // than the one held. A record that fails verification is reported.
  bool TakeLocked(const EtcdKeyValue& kv) const;
  StatusOr<NodeDesc> Decode(uint32_t n_id, const Bytes& sealed) const;
  // The record held for `n_id` (read through from etcd if not held) and
  // its mod_revision; empty bytes and revision 0 if etcd has none.
  StatusOr<Entry> Snapshot(uint32_t n_id) const;
  // After a failed compare: takes the stored records read back (`ids`
  // and `ranges` in the same order) and notes them changed.
  void TakeConflicts(const std::vector<uint32_t>& ids,
                     const std::vector<EtcdRange>& ranges);
  class UpdateTxn;

  EtcdClient& client_;
  const DomainCodec& codec_;
  const std::string prefix_;
  mutable std::mutex mu_;
  mutable std::map<uint32_t, Entry> records_;
  int64_t polled_revision_ = 0;
  std::vector<uint32_t> changed_;
  mutable std::vector<CorruptRecord> corrupt_;
};

// gen_keys: the records this instance created or read, and its unsynced
// writes, which a writer thread of its own sends (with `writer`, its
// client) once Flush is called: the caller's loop does not wait for them.
class EtcdGenKeysTable final : public GenKeysTable {
 public:
  EtcdGenKeysTable(EtcdClient& client, EtcdClient& writer,
                   const DomainCodec& codec, std::string prefix);
  // Sends what waits, then stops the writer thread (before the clients go).
  void Stop();
  ~EtcdGenKeysTable() override { Stop(); }

  StatusOr<GenKey> Get(uint64_t request_id) const override;
  StatusOr<GenKey> Peek(uint64_t request_id) const override;
  Status Create(const std::vector<const GenKey*>& keys,
                std::vector<GenKey>* existing) override;
  void PutUnsynced(const GenKey& g) override;
  void DeleteUnsynced(uint64_t request_id) override;
  void Flush() override;
  size_t size() const override;
  void ForEach(const std::function<void(const GenKey&)>& fn) const override;
  std::vector<CorruptRecord> corrupt_records() const override;

 private:
  struct Known {
    GenKey key;
    int64_t mod_revision = 0;  // 0: not in etcd yet (a pending put)
  };
  struct Pending {
    uint64_t id = 0;
    std::optional<GenKey> put;  // nullopt: delete
    int64_t expected_revision = 0;
  };
  void WriterLoop();
  // On the writer thread: one txn for `ops`, else one per op.
  void Write(std::vector<Pending> ops);
  void ApplyEach(const std::vector<Pending>& ops);
  StatusOr<GenKey> Remember(const EtcdKeyValue& kv) const;

  EtcdClient& client_;
  EtcdClient& writer_client_;
  const DomainCodec& codec_;
  const std::string prefix_;
  mutable std::mutex mu_;
  mutable std::map<uint64_t, Known> known_;
  std::vector<Pending> pending_;
  std::set<uint64_t> dirty_;  // ids waiting in pending_ or being written
  bool stop_ = false;
  std::condition_variable cv_;
  std::thread writer_;
  mutable std::vector<CorruptRecord> corrupt_;
};

std::string AcFloorKey(const std::string& prefix);

// The AC floor at <prefix>/ac_floor (etcd_ac_floor.cc).
class EtcdAcFloor final : public AcFloor {
 public:
  // `codec`: tags under its newest generation, checks under any it holds.
  EtcdAcFloor(EtcdClient& client, const DomainCodec& codec, std::string prefix)
      : client_(client), codec_(codec), prefix_(std::move(prefix)) {}
  StatusOr<uint64_t> Load() override;
  Status Raise(uint64_t counter) override;
  // A rotation's re-seal (cluster/rotation.cc): the floor tagged under an
  // older generation is tagged again under the newest, by compare-and-swap;
  // 1 if it did, 0 if there was nothing to do.
  StatusOr<size_t> Reseal();

 private:
  StatusOr<Bytes> Seal(uint64_t counter) const;
  StatusOr<uint64_t> Open(const Bytes& value) const;
  // The stored floor (0 if absent) and its mod_revision (0 if absent).
  StatusOr<std::pair<uint64_t, int64_t>> Read();

  EtcdClient& client_;
  const DomainCodec& codec_;
  const std::string prefix_;
};

}  // namespace kgr

#endif  // KGR_CLUSTER_ETCD_TABLES_H_
