// EtcdGenKeysTable: gen_keys on etcd. New records are create-only (one txn
// per batch); steps 5 and 7 and the purge are sent at the end of the batch
// (Flush), each compared with the revision this instance last saw.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>

#include "cluster/etcd_tables.h"

namespace kgr {
namespace {

constexpr int kMaxCreateAttempts = 4;

}  // namespace

std::string GenKeyKey(const std::string& prefix, uint64_t request_id) {
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx",
                static_cast<unsigned long long>(request_id));
  return prefix + "/gen_keys/" + hex;
}

StatusOr<GenKey> EtcdGenKeysTable::Remember(const EtcdKeyValue& kv) const {
  auto g = codec_.Decode<GenKey>(kv.value);
  if (!g.ok() || GenKeyKey(prefix_, g->request_id) != kv.key) {
    std::lock_guard<std::mutex> lock(mu_);
    corrupt_.push_back(
        {CorruptRecord::Source::kSnapshot,
         static_cast<uint64_t>(kv.mod_revision), std::nullopt,
         DataLossError("gen_keys record " + kv.key + ": verification failed")});
    return DataLossError("gen_keys record " + kv.key + ": verification failed");
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (dirty_.count(g->request_id) != 0) {  // this instance's write is newer
    return known_[g->request_id].key.Clone();
  }
  Known& k = known_[g->request_id];
  if (k.mod_revision <= kv.mod_revision) k = {g->Clone(), kv.mod_revision};
  return g;
}

StatusOr<GenKey> EtcdGenKeysTable::Peek(uint64_t request_id) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = known_.find(request_id);
  if (it == known_.end()) {
    return NotFoundError("gen_keys record " + std::to_string(request_id));
  }
  return it->second.key.Clone();
}

StatusOr<GenKey> EtcdGenKeysTable::Get(uint64_t request_id) const {
  auto held = Peek(request_id);
  if (held.ok() || held.status().code() != StatusCode::kNotFound) return held;
  KGR_ASSIGN_OR_RETURN(EtcdRange r,
                       client_.Range(GenKeyKey(prefix_, request_id)));
  if (r.kvs.empty()) return held.status();
  return Remember(r.kvs[0]);
}

Status EtcdGenKeysTable::Create(const std::vector<const GenKey*>& keys,
                                std::vector<GenKey>* existing) {
  if (keys.size() > kMaxTxnOps) {  // one txn per chunk
    for (size_t at = 0; at < keys.size(); at += kMaxTxnOps) {
      size_t end = std::min(keys.size(), at + kMaxTxnOps);
      KGR_RETURN_IF_ERROR(
          Create({keys.begin() + at, keys.begin() + end}, existing));
    }
    return OkStatus();
  }
  std::vector<const GenKey*> remaining = keys;
  for (int attempt = 0; attempt < kMaxCreateAttempts; ++attempt) {
    if (remaining.empty()) return OkStatus();
    std::vector<EtcdCompare> compares;
    std::vector<EtcdOp> puts, reads;
    for (const GenKey* g : remaining) {
      KGR_ASSIGN_OR_RETURN(Bytes sealed, codec_.Encode(*g));
      std::string key = GenKeyKey(prefix_, g->request_id);
      compares.push_back(
          {key, EtcdCompare::Target::kCreate, EtcdCompare::Result::kEqual, 0});
      reads.push_back(EtcdOp::Get(key));
      puts.push_back(EtcdOp::Put(std::move(key), std::move(sealed)));
    }
    KGR_ASSIGN_OR_RETURN(EtcdTxnResult r, client_.Txn(compares, puts, reads));
    if (r.succeeded) {
      std::lock_guard<std::mutex> lock(mu_);
      for (const GenKey* g : remaining) {
        known_[g->request_id] = {g->Clone(), r.revision};
      }
      return OkStatus();
    }
    // Some ids exist already (another instance, or this txn applied once
    // before a failover): those are answered from their records.
    std::vector<const GenKey*> absent;
    for (size_t i = 0; i < remaining.size() && i < r.ranges.size(); ++i) {
      if (r.ranges[i].kvs.empty()) {
        absent.push_back(remaining[i]);
        continue;
      }
      auto theirs = Remember(r.ranges[i].kvs[0]);
      if (theirs.ok()) {
        existing->push_back(*std::move(theirs));
      } else {
        GenKey unreadable;  // refused as stale
        unreadable.request_id = remaining[i]->request_id;
        unreadable.step = kGenKeyTombstone;
        existing->push_back(std::move(unreadable));
      }
    }
    remaining = std::move(absent);
  }
  return remaining.empty() ? OkStatus()
                           : AbortedError("gen_keys: create kept conflicting");
}

void EtcdGenKeysTable::PutUnsynced(const GenKey& g) {
  std::lock_guard<std::mutex> lock(mu_);
  Known& k = known_[g.request_id];
  for (Pending& p : pending_) {
    if (p.id == g.request_id) {  // replaces a waiting write
      p.put = g.Clone();
      k.key = g.Clone();
      return;
    }
  }
  pending_.push_back({g.request_id, g.Clone(), k.mod_revision});
  dirty_.insert(g.request_id);
  k.key = g.Clone();
}

void EtcdGenKeysTable::DeleteUnsynced(uint64_t request_id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = known_.find(request_id);
  int64_t rev = it == known_.end() ? 0 : it->second.mod_revision;
  if (it != known_.end()) known_.erase(it);
  for (Pending& p : pending_) {
    if (p.id == request_id) {
      p.put.reset();
      return;
    }
  }
  if (rev != 0) {
    pending_.push_back({request_id, std::nullopt, rev});
    dirty_.insert(request_id);
  }
}

EtcdGenKeysTable::EtcdGenKeysTable(EtcdClient& client, EtcdClient& writer,
                                   const DomainCodec& codec, std::string prefix)
    : client_(client),
      writer_client_(writer),
      codec_(codec),
      prefix_(std::move(prefix)) {
  writer_ = std::thread([this] { WriterLoop(); });
}

void EtcdGenKeysTable::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (writer_.joinable()) writer_.join();
}

void EtcdGenKeysTable::Flush() {
  std::lock_guard<std::mutex> lock(mu_);
  if (!pending_.empty()) cv_.notify_all();
}

void EtcdGenKeysTable::WriterLoop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    cv_.wait(lock, [this] { return stop_ || !pending_.empty(); });
    if (pending_.empty()) return;  // stopping, nothing left
    std::vector<Pending> ops;
    size_t n = std::min(pending_.size(), kMaxTxnOps);
    ops.assign(std::make_move_iterator(pending_.begin()),
               std::make_move_iterator(pending_.begin() + n));
    pending_.erase(pending_.begin(), pending_.begin() + n);
    // The revision to compare with is the latest this instance knows when
    // the op is sent (an earlier write of the same id may have just landed).
    for (Pending& p : ops) {
      auto it = known_.find(p.id);
      if (p.put.has_value() && it != known_.end()) {
        p.expected_revision = it->second.mod_revision;
      }
    }
    lock.unlock();
    std::vector<uint64_t> ids;
    for (const Pending& p : ops) ids.push_back(p.id);
    Write(std::move(ops));
    lock.lock();
    for (uint64_t id : ids) {
      bool waiting = false;
      for (const Pending& p : pending_) waiting = waiting || p.id == id;
      if (!waiting) dirty_.erase(id);
    }
  }
}

void EtcdGenKeysTable::Write(std::vector<Pending> ops) {
  std::vector<EtcdCompare> compares;
  std::vector<EtcdOp> writes;
  for (const Pending& p : ops) {
    std::string key = GenKeyKey(prefix_, p.id);
    compares.push_back({key, EtcdCompare::Target::kMod,
                        EtcdCompare::Result::kEqual, p.expected_revision});
    if (p.put.has_value()) {
      auto sealed = codec_.Encode(*p.put);
      if (!sealed.ok()) continue;
      writes.push_back(EtcdOp::Put(std::move(key), *std::move(sealed)));
    } else {
      writes.push_back(EtcdOp::Delete(std::move(key)));
    }
  }
  auto r = writer_client_.Txn(compares, writes, {});
  if (!r.ok()) {
    // The protocol repeats these steps; the records stay as they were.
    spdlog::warn("etcd: {} gen_keys updates not written: {}", ops.size(),
                 r.status().ToString());
    std::lock_guard<std::mutex> lock(mu_);
    for (const Pending& p : ops) known_.erase(p.id);
    return;
  }
  if (!r->succeeded) return ApplyEach(ops);
  std::lock_guard<std::mutex> lock(mu_);
  for (const Pending& p : ops) {
    auto it = known_.find(p.id);
    if (it != known_.end() && p.put.has_value()) {
      it->second.mod_revision = r->revision;
    }
  }
}

// One txn per update after a batch failed: a record another instance
// changed meanwhile keeps its value, and is read again when needed.
void EtcdGenKeysTable::ApplyEach(const std::vector<Pending>& ops) {
  for (const Pending& p : ops) {
    std::string key = GenKeyKey(prefix_, p.id);
    EtcdCompare c{key, EtcdCompare::Target::kMod, EtcdCompare::Result::kEqual,
                  p.expected_revision};
    EtcdOp op = EtcdOp::Delete(key);
    if (p.put.has_value()) {
      auto sealed = codec_.Encode(*p.put);
      if (!sealed.ok()) continue;
      op = EtcdOp::Put(key, *std::move(sealed));
    }
    auto r = writer_client_.Txn({c}, {op}, {});
    std::lock_guard<std::mutex> lock(mu_);
    auto it = known_.find(p.id);
    if (r.ok() && r->succeeded) {
      if (it != known_.end()) it->second.mod_revision = r->revision;
    } else if (it != known_.end()) {
      known_.erase(it);
    }
  }
}

size_t EtcdGenKeysTable::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return known_.size();
}

void EtcdGenKeysTable::ForEach(
    const std::function<void(const GenKey&)>& fn) const {
  const std::string from = prefix_ + "/gen_keys/";
  auto r = client_.Range(from, EtcdPrefixEnd(from));
  if (!r.ok()) {
    spdlog::warn("etcd: gen_keys not read: {}", r.status().ToString());
    return;
  }
  std::vector<GenKey> all;
  all.reserve(r->kvs.size());
  for (const EtcdKeyValue& kv : r->kvs) {
    auto g = Remember(kv);
    if (g.ok()) all.push_back(*std::move(g));
  }
  for (const GenKey& g : all) fn(g);
}

std::vector<CorruptRecord> EtcdGenKeysTable::corrupt_records() const {
  std::lock_guard<std::mutex> lock(mu_);
  return corrupt_;
}

}  // namespace kgr
