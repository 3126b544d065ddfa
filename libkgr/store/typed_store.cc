// TypedStore: a RecordFile that seals and opens records of one type, with
// its cache of decoded records and its unsynced writes.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <utility>

#include "kgr/store.h"
#include "store/format.h"

namespace kgr {

template <typename R>
struct TypedStore<R>::State {
  // The memo of decoded records: `record` is what `sealed` opens to. Valid
  // whatever the store holds, so it needs no coordination with writers: Get
  // uses it only when the stored bytes equal `sealed`.
  struct Decoded {
    Bytes sealed;
    R record;
  };
  std::mutex decoded_mu;
  std::unordered_map<Key, Decoded> decoded;  // guarded by decoded_mu
  // Unsynced writes not sealed yet (nullopt: a delete), guarded by
  // pending_mu (taken before the file's lock, never after).
  std::mutex pending_mu;
  std::map<Key, std::optional<R>> pending;
};

template <typename R>
TypedStore<R>::TypedStore(std::unique_ptr<RecordFile> file, RecordKeys keys,
                          uint32_t owner, size_t decoded_records)
    : file_(std::move(file)),
      keys_(std::move(keys)),
      codec_(keys_, owner),
      decoded_capacity_(decoded_records),
      state_(std::make_unique<State>()) {}

template <typename R>
TypedStore<R>::~TypedStore() {
  FlushPending();
}

template <typename R>
Status TypedStore<R>::Batch::Put(const R& record) {
  KGR_ASSIGN_OR_RETURN(Bytes sealed, store_->codec_.Encode(record));
  if (store_->decoded_capacity_ != 0) {
    store_->Remember(record.key(), sealed, record);
  }
  batch_.Put(record.key(), std::move(sealed));
  return OkStatus();
}

template <typename R>
void TypedStore<R>::Remember(Key key, Bytes sealed, const R& record) const {
  if (decoded_capacity_ == 0) return;
  std::lock_guard<std::mutex> l(state_->decoded_mu);
  auto it = state_->decoded.find(key);
  if (it != state_->decoded.end()) {
    it->second = typename State::Decoded{std::move(sealed), record.Clone()};
    return;
  }
  if (state_->decoded.size() >= decoded_capacity_)
    state_->decoded.erase(state_->decoded.begin());
  state_->decoded.emplace(
      key, typename State::Decoded{std::move(sealed), record.Clone()});
}

template <typename R>
void TypedStore<R>::Forget(Key key) const {
  if (decoded_capacity_ == 0) return;
  std::lock_guard<std::mutex> l(state_->decoded_mu);
  state_->decoded.erase(key);
}

template <typename R>
StatusOr<std::unique_ptr<TypedStore<R>>> TypedStore<R>::Open(
    FileSystem& fs, const std::string& path, const RecordKeys& keys,
    uint32_t owner_n_id, const StoreOptions& options) {
  // Prepared once; the RecordFile's copy shares the same contexts.
  RecordKeys prepared = PreparedCopy(keys);
  KGR_ASSIGN_OR_RETURN(
      std::unique_ptr<RecordFile> file,
      RecordFile::Open(fs, path, R::kType, prepared, owner_n_id, options));
  return std::unique_ptr<TypedStore<R>>(
      new TypedStore<R>(std::move(file), std::move(prepared), owner_n_id,
                        options.decoded_records));
}

template <typename R>
void TypedStore<R>::FlushPending() const {
  std::lock_guard<std::mutex> l(state_->pending_mu);
  FlushPendingLocked({});
}

template <typename R>
void TypedStore<R>::FlushPendingLocked(const std::vector<Key>& keep) const {
  if (state_->pending.size() <= keep.size()) return;  // nothing else waits
  RecordBatch batch;
  batch.sealed_by_store_ = true;
  for (auto it = state_->pending.begin(); it != state_->pending.end();) {
    auto& [key, record] = *it;
    if (std::find(keep.begin(), keep.end(), key) != keep.end()) {
      ++it;
      continue;
    }
    if (!record) {
      batch.Delete(key);
    } else if (StatusOr<Bytes> sealed = codec_.Encode(*record); sealed.ok()) {
      Remember(key, *sealed, *record);
      batch.Put(key, *std::move(sealed));
    } else {
      spdlog::warn("store {}: {}", file_->path(), sealed.status().ToString());
    }
    it = state_->pending.erase(it);
  }
  file_->ApplyUnsynced(std::move(batch));
}

template <typename R>
size_t TypedStore<R>::Count() const {
  std::lock_guard<std::mutex> l(state_->pending_mu);
  size_t n = file_->Count();
  for (const auto& [key, record] : state_->pending) {
    bool stored = file_->Contains(key);
    if (record && !stored) ++n;
    if (!record && stored) --n;
  }
  return n;
}

template <typename R>
bool TypedStore<R>::Contains(Key key) const {
  {
    std::lock_guard<std::mutex> l(state_->pending_mu);
    auto it = state_->pending.find(key);
    if (it != state_->pending.end()) return it->second.has_value();
  }
  return file_->Contains(key);
}

template <typename R>
StatusOr<R> TypedStore<R>::Get(Key key) const {
  {
    std::lock_guard<std::mutex> l(state_->pending_mu);
    auto it = state_->pending.find(key);
    if (it != state_->pending.end()) {
      if (!it->second)
        return NotFoundError(RecordNameOf(R::kType, key) + ": not found");
      return it->second->Clone();
    }
  }
  KGR_ASSIGN_OR_RETURN(Bytes sealed, file_->Get(key));
  if (decoded_capacity_ != 0) {
    std::lock_guard<std::mutex> l(state_->decoded_mu);
    auto it = state_->decoded.find(key);
    if (it != state_->decoded.end() && it->second.sealed == sealed) {
      return it->second.record.Clone();
    }
  }
  StatusOr<R> r = codec_.template Decode<R>(sealed);
  if (!r.ok()) {
    return DataLossError(RecordNameOf(R::kType, key) + ": " +
                         kVerificationFailed);
  }
  Remember(key, std::move(sealed), *r);
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
  std::lock_guard<std::mutex> l(state_->pending_mu);
  state_->pending.insert_or_assign(record.key(), record.Clone());
  if (state_->pending.size() >= kMaxPendingRecords) FlushPendingLocked({});
}

template <typename R>
void TypedStore<R>::DeleteUnsynced(Key key) {
  Forget(key);
  std::lock_guard<std::mutex> l(state_->pending_mu);
  state_->pending.insert_or_assign(key, std::nullopt);
  if (state_->pending.size() >= kMaxPendingRecords) FlushPendingLocked({});
}

template <typename R>
Status TypedStore<R>::Delete(Key key) {
  Forget(key);
  Batch batch = NewBatch();
  batch.Delete(key);
  return Apply(std::move(batch));
}

template <typename R>
Status TypedStore<R>::Apply(Batch batch) {
  if (batch.store_ != this)
    return InvalidArgumentError("batch of another store");
  // The waiting unsynced writes go first, but for the batch's own keys:
  // those the batch replaces unsealed. They stay readable until it is
  // applied (the lock is held through the write then, so Get never sees an
  // older record) and stay waiting if it fails.
  std::unique_lock<std::mutex> l(state_->pending_mu);
  std::vector<Key> replaced;
  for (const RecordBatch::Op& op : batch.batch_.ops_) {
    Key key = static_cast<Key>(op.key);
    if (state_->pending.count(key) &&
        std::find(replaced.begin(), replaced.end(), key) == replaced.end()) {
      replaced.push_back(key);  // once: a batch may write a key twice
    }
  }
  FlushPendingLocked(replaced);
  if (replaced.empty()) l.unlock();  // concurrent writers share the sync
  Status st = file_->Apply(std::move(batch.batch_));
  if (st.ok()) {
    for (Key key : replaced) state_->pending.erase(key);
  }
  return st;
}

template <typename R>
std::vector<typename TypedStore<R>::Key> TypedStore<R>::List() const {
  FlushPending();
  std::vector<Key> out;
  for (uint64_t k : file_->Keys()) out.push_back(static_cast<Key>(k));
  return out;
}

template <typename R>
void TypedStore<R>::ForEach(const std::function<void(const R&)>& fn) const {
  FlushPending();
  for (const auto& [key, sealed] : file_->Snapshot()) {
    StatusOr<R> r = codec_.template Decode<R>(sealed);
    if (!r.ok()) {  // verified when loaded: memory corruption or a bug
      spdlog::error("store {}: {}: {}", file_->path(),
                    RecordNameOf(R::kType, key), kVerificationFailed);
      continue;
    }
    fn(*r);
  }
}

template class TypedStore<NodeDesc>;
template class TypedStore<GenKey>;
template class TypedStore<SesKey>;
template class TypedStore<GroupRecord>;
template class TypedStore<GroupDesc>;

}  // namespace kgr
