// EtcdNodeDescTable::Update: a read-modify-write of node_desc records as
// one etcd txn that compares the mod_revision of every record the change
// read, re-run on fresher records after a conflict (kgr/ks_state.h).
#include <algorithm>
#include <chrono>
#include <map>
#include <random>
#include <thread>

#include "cluster/etcd_tables.h"

namespace kgr {
namespace {

constexpr int kMaxUpdateAttempts = 16;

// After the n-th conflict in a row, a pause of 0 to min(2^n, 64) ms, so
// that an instance whose writes keep losing to a busier one gets its turn
// (the winner is the one whose txn reaches etcd first; without a pause the
// busier one, with nothing to read again, always is).
void BackOff(int conflicts) {
  thread_local std::minstd_rand rng(std::random_device{}());
  const int max_ms = std::min(64, 1 << std::min(conflicts, 6));
  std::uniform_int_distribution<int> pause_us(0, max_ms * 1000);
  std::this_thread::sleep_for(std::chrono::microseconds(pause_us(rng)));
}

}  // namespace

// What one attempt read (with the revision it read) and what it puts.
class EtcdNodeDescTable::UpdateTxn final : public NodeDescTxn {
 public:
  explicit UpdateTxn(const EtcdNodeDescTable& table) : table_(table) {}

  StatusOr<NodeDesc> Get(uint32_t n_id) override {
    auto put = puts_.find(n_id);
    if (put != puts_.end()) return put->second.Clone();
    KGR_ASSIGN_OR_RETURN(Entry e, Read(n_id));
    if (e.mod_revision == 0) {
      return NotFoundError("node_desc record " + std::to_string(n_id));
    }
    return table_.Decode(n_id, e.sealed);
  }

  void Put(NodeDesc d) override {
    const uint32_t n_id = d.n_id;
    // A record written is compared like one read: a blind put of a record
    // another instance changed would lose that change.
    if (!Read(n_id).ok()) read_failed_ = true;
    puts_.insert_or_assign(n_id, std::move(d));
  }

  bool read_failed() const { return read_failed_; }
  const std::map<uint32_t, int64_t>& revisions() const { return revisions_; }
  std::map<uint32_t, NodeDesc>& puts() { return puts_; }

 private:
  // The first read of `n_id` in this attempt fixes the revision compared.
  StatusOr<Entry> Read(uint32_t n_id) {
    KGR_ASSIGN_OR_RETURN(Entry e, table_.Snapshot(n_id));
    revisions_.emplace(n_id, e.mod_revision);
    return e;
  }

  const EtcdNodeDescTable& table_;
  std::map<uint32_t, int64_t> revisions_;
  std::map<uint32_t, NodeDesc> puts_;
  bool read_failed_ = false;
};

StatusOr<EtcdNodeDescTable::Entry> EtcdNodeDescTable::Snapshot(
    uint32_t n_id) const {
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = records_.find(n_id);
    if (it != records_.end()) return it->second;
  }
  // Not held: another instance may have created it since the last poll.
  KGR_ASSIGN_OR_RETURN(EtcdRange r, client_.Range(NodeDescKey(prefix_, n_id)));
  if (r.kvs.empty()) return Entry{};
  std::lock_guard<std::mutex> lock(mu_);
  TakeLocked(r.kvs[0]);
  return Entry{r.kvs[0].value, r.kvs[0].mod_revision};
}

void EtcdNodeDescTable::TakeConflicts(const std::vector<uint32_t>& ids,
                                      const std::vector<EtcdRange>& ranges) {
  std::lock_guard<std::mutex> lock(mu_);
  for (size_t i = 0; i < ids.size() && i < ranges.size(); ++i) {
    if (ranges[i].kvs.empty()) {
      records_.erase(ids[i]);
    } else {
      TakeLocked(ranges[i].kvs[0]);
    }
    changed_.push_back(ids[i]);  // the KS's cached copy may be stale
  }
}

Status EtcdNodeDescTable::Update(const NodeDescChange& change,
                                 std::vector<NodeDesc>* written) {
  if (written != nullptr) written->clear();
  for (int attempt = 0; attempt < kMaxUpdateAttempts; ++attempt) {
    UpdateTxn txn(*this);
    KGR_RETURN_IF_ERROR(change(txn));
    if (txn.puts().empty()) return OkStatus();
    if (txn.read_failed()) {
      return UnavailableError("node_desc: a record to write was not read");
    }
    if (txn.revisions().size() > kMaxUpdateRecords) {
      return InvalidArgumentError("node_desc: more than " +
                                  std::to_string(kMaxUpdateRecords) +
                                  " records in one update");
    }
    std::vector<EtcdCompare> compares;
    std::vector<EtcdOp> puts, reads;
    std::vector<uint32_t> compared;
    for (const auto& [n_id, rev] : txn.revisions()) {
      const std::string key = NodeDescKey(prefix_, n_id);
      // MOD == 0 holds for an absent key (a node being created).
      compares.push_back(
          {key, EtcdCompare::Target::kMod, EtcdCompare::Result::kEqual, rev});
      reads.push_back(EtcdOp::Get(key));
      compared.push_back(n_id);
    }
    std::map<uint32_t, Bytes> sealed;
    for (const auto& [n_id, d] : txn.puts()) {
      KGR_ASSIGN_OR_RETURN(Bytes s, codec_.Encode(d));
      puts.push_back(EtcdOp::Put(NodeDescKey(prefix_, n_id), s));
      sealed.emplace(n_id, std::move(s));
    }
    KGR_ASSIGN_OR_RETURN(EtcdTxnResult r, client_.Txn(compares, puts, reads));
    if (!r.succeeded) {
      // Another instance wrote some of them: run the change again on the
      // records as they are now.
      TakeConflicts(compared, r.ranges);
      BackOff(attempt + 1);
      continue;
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (auto& [n_id, s] : sealed) {
        records_[n_id] = {std::move(s), r.revision};
      }
    }
    if (written != nullptr) {
      for (auto& [n_id, d] : txn.puts()) written->push_back(std::move(d));
    }
    return OkStatus();
  }
  return AbortedError("node_desc: gave up after " +
                      std::to_string(kMaxUpdateAttempts) +
                      " conflicting writes");
}

}  // namespace kgr
