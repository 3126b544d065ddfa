#include "kgr/key_server.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "ks/internal.h"

namespace kgr {

// ---- node_desc cache ----

StatusOr<KeyServer::NodeRef> KeyServer::FindNode(uint32_t n_id) {
  auto it = node_cache_.find(n_id);
  if (it != node_cache_.end()) return it->second;
  KGR_ASSIGN_OR_RETURN(NodeDesc d, nodes_.Get(n_id));
  CacheNode(d);
  it = node_cache_.find(n_id);
  if (it != node_cache_.end()) return it->second;
  return std::make_shared<const NodeDesc>(std::move(d));  // no cache
}

StatusOr<NodeDesc> KeyServer::GetNode(uint32_t n_id) {
  KGR_ASSIGN_OR_RETURN(NodeRef node, FindNode(n_id));
  return node->Clone();
}

void KeyServer::CacheNode(const NodeDesc& d) {
  if (options_.node_cache_entries == 0) return;
  NodeDesc entry = d.Clone();
  // Clones of the entry (one per frame) share the prepared key setup.
  for (SymmetricKeys* k : {&entry.nksk, &entry.prev_nksk}) {
    if (k->valid() && !k->prepared) (void)k->Prepare();
  }
  auto shared = std::make_shared<const NodeDesc>(std::move(entry));
  auto it = node_cache_.find(d.n_id);
  if (it != node_cache_.end()) {
    it->second = std::move(shared);
    return;
  }
  // Full: evict an arbitrary entry (its secrets are wiped on destruction,
  // when the last frame using it is done).
  if (node_cache_.size() >= options_.node_cache_entries) {
    node_cache_.erase(node_cache_.begin());
  }
  node_cache_.emplace(d.n_id, std::move(shared));
}

Status KeyServer::PutNode(const NodeDesc& d) {
  Status st = nodes_.Put(d);
  AfterNodeWrite(d, st);
  return st;
}

Status KeyServer::PutNodes(const std::vector<NodeDesc>& batch) {
  Status st = nodes_.PutAll(batch);
  for (const NodeDesc& d : batch) AfterNodeWrite(d, st);
  return st;
}

void KeyServer::AfterNodeWrite(const NodeDesc& d, const Status& written) {
  if (written.ok()) {
    CacheNode(d);
  } else {
    node_cache_.erase(d.n_id);  // the store decides what is true
  }
}

}  // namespace kgr
