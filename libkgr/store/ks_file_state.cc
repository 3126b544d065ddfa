// FileKsState: the KS's state on its record files (kgr/ks_state.h), every
// call forwarded to the TypedStore.
#include <map>
#include <utility>

#include "kgr/ks_state.h"

namespace kgr {
namespace {

// One writer (the files, a simulation's shared store): the records as the
// table holds them, with this attempt's puts over them.
class OneWriterTxn final : public NodeDescTxn {
 public:
  explicit OneWriterTxn(const NodeDescTable& table) : table_(table) {}
  StatusOr<NodeDesc> Get(uint32_t n_id) override {
    auto it = puts_.find(n_id);
    if (it != puts_.end()) return it->second.Clone();
    return table_.Get(n_id);
  }
  void Put(NodeDesc d) override {
    const uint32_t n_id = d.n_id;
    puts_.insert_or_assign(n_id, std::move(d));
  }
  std::vector<NodeDesc> TakePuts() {
    std::vector<NodeDesc> out;
    for (auto& [id, d] : puts_) out.push_back(std::move(d));
    return out;
  }

 private:
  const NodeDescTable& table_;
  std::map<uint32_t, NodeDesc> puts_;
};

class FileNodeDescTable final : public NodeDescTable {
 public:
  explicit FileNodeDescTable(NodeDescStore& s) : s_(s) {}
  StatusOr<NodeDesc> Get(uint32_t n_id) const override { return s_.Get(n_id); }
  bool Contains(uint32_t n_id) const override { return s_.Contains(n_id); }
  Status Put(const NodeDesc& d) override { return s_.Put(d); }
  Status PutAll(const std::vector<NodeDesc>& batch) override {
    return s_.PutAll(batch);
  }
  std::vector<uint32_t> List() const override { return s_.List(); }
  size_t size() const override { return s_.size(); }
  void ForEach(const std::function<void(const NodeDesc&)>& fn) const override {
    s_.ForEach(fn);
  }
  std::vector<CorruptRecord> corrupt_records() const override {
    return s_.corrupt_records();
  }

 private:
  NodeDescStore& s_;
};

class FileGenKeysTable final : public GenKeysTable {
 public:
  explicit FileGenKeysTable(GenKeysStore& s) : s_(s) {}
  StatusOr<GenKey> Get(uint64_t id) const override { return s_.Get(id); }
  Status Create(const std::vector<const GenKey*>& keys,
                std::vector<GenKey>* /*existing*/) override {
    GenKeysStore::Batch batch = s_.NewBatch();
    for (const GenKey* g : keys) KGR_RETURN_IF_ERROR(batch.Put(*g));
    return s_.Apply(std::move(batch));
  }
  void PutUnsynced(const GenKey& g) override { s_.PutUnsynced(g); }
  void DeleteUnsynced(uint64_t id) override { s_.DeleteUnsynced(id); }
  size_t size() const override { return s_.size(); }
  void ForEach(const std::function<void(const GenKey&)>& fn) const override {
    s_.ForEach(fn);
  }
  std::vector<CorruptRecord> corrupt_records() const override {
    return s_.corrupt_records();
  }

 private:
  GenKeysStore& s_;
};

class FileState final : public KsState {
 public:
  FileState(NodeDescStore& nodes, GenKeysStore& gen_keys)
      : nodes_(nodes), gen_keys_(gen_keys) {}
  FileState(std::unique_ptr<NodeDescStore> nodes,
            std::unique_ptr<GenKeysStore> gen_keys)
      : owned_nodes_(std::move(nodes)),
        owned_gen_keys_(std::move(gen_keys)),
        nodes_(*owned_nodes_),
        gen_keys_(*owned_gen_keys_) {}
  NodeDescTable& nodes() override { return nodes_; }
  GenKeysTable& gen_keys() override { return gen_keys_; }

 private:
  std::unique_ptr<NodeDescStore> owned_nodes_;
  std::unique_ptr<GenKeysStore> owned_gen_keys_;
  FileNodeDescTable nodes_;
  FileGenKeysTable gen_keys_;
};

}  // namespace

Status NodeDescTable::Update(const NodeDescChange& change,
                             std::vector<NodeDesc>* written) {
  if (written != nullptr) written->clear();
  OneWriterTxn txn(*this);
  KGR_RETURN_IF_ERROR(change(txn));
  std::vector<NodeDesc> batch = txn.TakePuts();
  if (batch.empty()) return OkStatus();
  KGR_RETURN_IF_ERROR(PutAll(batch));
  if (written != nullptr) *written = std::move(batch);
  return OkStatus();
}

std::unique_ptr<KsState> FileKsState(NodeDescStore& nodes,
                                     GenKeysStore& gen_keys) {
  return std::make_unique<FileState>(nodes, gen_keys);
}

std::unique_ptr<KsState> FileKsState(std::unique_ptr<NodeDescStore> nodes,
                                     std::unique_ptr<GenKeysStore> gen_keys) {
  return std::make_unique<FileState>(std::move(nodes), std::move(gen_keys));
}

}  // namespace kgr
