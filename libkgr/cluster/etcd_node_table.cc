// EtcdNodeDescTable: node_desc on etcd, mirrored in memory (sealed).
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>

#include "cluster/etcd_tables.h"

namespace kgr {
namespace {

constexpr int kMaxWriteAttempts = 8;

// The N_ID at the end of "<prefix>/node_desc/<8 hex>".
std::optional<uint32_t> NodeIdOf(const std::string& key) {
  if (key.size() < 8) return std::nullopt;
  unsigned long v = 0;
  if (std::sscanf(key.c_str() + key.size() - 8, "%8lx", &v) != 1) {
    return std::nullopt;
  }
  return static_cast<uint32_t>(v);
}

// A write made against an older record than the stored one: it wins, but
// the replay floors never go down.
void MergeFloors(NodeDesc& mine, const NodeDesc& stored) {
  mine.last_counter = std::max(mine.last_counter, stored.last_counter);
  mine.request_floor = std::max(mine.request_floor, stored.request_floor);
}

}  // namespace

std::string NodeDescKey(const std::string& prefix, uint32_t n_id) {
  char hex[9];
  std::snprintf(hex, sizeof hex, "%08x", n_id);
  return prefix + "/node_desc/" + hex;
}

bool EtcdNodeDescTable::TakeLocked(const EtcdKeyValue& kv) const {
  std::optional<uint32_t> id = NodeIdOf(kv.key);
  if (!id.has_value()) return false;
  auto it = records_.find(*id);
  if (it != records_.end() && it->second.mod_revision >= kv.mod_revision) {
    return false;
  }
  auto verified = codec_.Verify(RecordType::kNodeDesc, kv.value);
  if (!verified.ok() || *verified != *id) {
    corrupt_.push_back(
        {CorruptRecord::Source::kSnapshot,
         static_cast<uint64_t>(kv.mod_revision), *id,
         verified.ok() ? DataLossError("key mismatch") : verified.status()});
    records_.erase(*id);
    return true;
  }
  records_[*id] = {kv.value, kv.mod_revision};
  return true;
}

Status EtcdNodeDescTable::Load() {
  const std::string from = prefix_ + "/node_desc/";
  KGR_ASSIGN_OR_RETURN(EtcdRange r, client_.Range(from, EtcdPrefixEnd(from)));
  std::lock_guard<std::mutex> lock(mu_);
  for (const EtcdKeyValue& kv : r.kvs) TakeLocked(kv);
  polled_revision_ = r.revision;
  return OkStatus();
}

Status EtcdNodeDescTable::Poll(EtcdClient& poller) {
  int64_t since;
  {
    std::lock_guard<std::mutex> lock(mu_);
    since = polled_revision_ + 1;
  }
  const std::string from = prefix_ + "/node_desc/";
  KGR_ASSIGN_OR_RETURN(EtcdRange r,
                       poller.Range(from, EtcdPrefixEnd(from), 0, since));
  std::lock_guard<std::mutex> lock(mu_);
  for (const EtcdKeyValue& kv : r.kvs) {
    if (TakeLocked(kv)) {
      if (auto id = NodeIdOf(kv.key)) changed_.push_back(*id);
    }
  }
  polled_revision_ = std::max(polled_revision_, r.revision);
  return OkStatus();
}

StatusOr<NodeDesc> EtcdNodeDescTable::Decode(uint32_t n_id,
                                             const Bytes& sealed) const {
  auto d = codec_.Decode<NodeDesc>(sealed);
  if (!d.ok() || d->n_id != n_id) {
    return DataLossError("node_desc record " + std::to_string(n_id) +
                         ": verification failed");
  }
  return d;
}

StatusOr<NodeDesc> EtcdNodeDescTable::Get(uint32_t n_id) const {
  std::optional<Bytes> held;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = records_.find(n_id);
    if (it != records_.end()) held = it->second.sealed;
  }
  if (held.has_value()) return Decode(n_id, *held);
  // Not here yet: another instance may have written it since the last poll.
  KGR_ASSIGN_OR_RETURN(EtcdRange r, client_.Range(NodeDescKey(prefix_, n_id)));
  if (r.kvs.empty()) {
    return NotFoundError("node_desc record " + std::to_string(n_id));
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    TakeLocked(r.kvs[0]);
  }
  return Decode(n_id, r.kvs[0].value);
}

bool EtcdNodeDescTable::Contains(uint32_t n_id) const {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (records_.count(n_id) != 0) return true;
  }
  return Get(n_id).ok();
}

Status EtcdNodeDescTable::PutAll(const std::vector<NodeDesc>& batch) {
  if (batch.empty()) return OkStatus();
  if (batch.size() > kMaxTxnOps) {  // atomic per chunk of 128 records
    for (size_t at = 0; at < batch.size(); at += kMaxTxnOps) {
      std::vector<NodeDesc> chunk;
      for (size_t i = at; i < std::min(batch.size(), at + kMaxTxnOps); ++i) {
        chunk.push_back(batch[i].Clone());
      }
      KGR_RETURN_IF_ERROR(PutAll(chunk));
    }
    return OkStatus();
  }
  std::vector<NodeDesc> mine;
  mine.reserve(batch.size());
  for (const NodeDesc& d : batch) mine.push_back(d.Clone());
  for (int attempt = 0; attempt < kMaxWriteAttempts; ++attempt) {
    std::vector<EtcdCompare> compares;
    std::vector<EtcdOp> puts, reads;
    std::vector<Bytes> sealed;
    for (const NodeDesc& d : mine) {
      KGR_ASSIGN_OR_RETURN(Bytes s, codec_.Encode(d));
      const std::string key = NodeDescKey(prefix_, d.n_id);
      int64_t rev = 0;
      {
        std::lock_guard<std::mutex> lock(mu_);
        auto it = records_.find(d.n_id);
        if (it != records_.end()) rev = it->second.mod_revision;
      }
      // MOD == 0: the key is absent (a new node).
      compares.push_back(
          {key, EtcdCompare::Target::kMod, EtcdCompare::Result::kEqual, rev});
      puts.push_back(EtcdOp::Put(key, s));
      reads.push_back(EtcdOp::Get(key));
      sealed.push_back(std::move(s));
    }
    KGR_ASSIGN_OR_RETURN(EtcdTxnResult r, client_.Txn(compares, puts, reads));
    std::lock_guard<std::mutex> lock(mu_);
    if (r.succeeded) {
      for (size_t i = 0; i < mine.size(); ++i) {
        records_[mine[i].n_id] = {std::move(sealed[i]), r.revision};
      }
      return OkStatus();
    }
    // Another instance wrote some of them: take theirs, merge, try again.
    for (size_t i = 0; i < r.ranges.size() && i < mine.size(); ++i) {
      if (r.ranges[i].kvs.empty()) {
        records_.erase(mine[i].n_id);
        continue;
      }
      const EtcdKeyValue& kv = r.ranges[i].kvs[0];
      TakeLocked(kv);
      changed_.push_back(mine[i].n_id);  // the KS's cached copy is stale
      auto stored = codec_.Decode<NodeDesc>(kv.value);
      if (stored.ok()) MergeFloors(mine[i], *stored);
    }
  }
  return AbortedError("node_desc: gave up after " +
                      std::to_string(kMaxWriteAttempts) +
                      " conflicting writes");
}

std::vector<uint32_t> EtcdNodeDescTable::List() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<uint32_t> ids;
  ids.reserve(records_.size());
  for (const auto& [id, e] : records_) ids.push_back(id);
  return ids;
}

size_t EtcdNodeDescTable::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return records_.size();
}

void EtcdNodeDescTable::ForEach(
    const std::function<void(const NodeDesc&)>& fn) const {
  std::vector<std::pair<uint32_t, Bytes>> copy;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [id, e] : records_) copy.emplace_back(id, e.sealed);
  }
  for (const auto& [id, sealed] : copy) {
    auto d = Decode(id, sealed);
    if (d.ok()) fn(*d);
  }
}

std::vector<CorruptRecord> EtcdNodeDescTable::corrupt_records() const {
  std::lock_guard<std::mutex> lock(mu_);
  return corrupt_;
}

std::vector<uint32_t> EtcdNodeDescTable::TakeChanged() {
  std::lock_guard<std::mutex> lock(mu_);
  return std::exchange(changed_, {});
}

}  // namespace kgr
