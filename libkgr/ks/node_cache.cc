#include <spdlog/spdlog.h>

#include <algorithm>

#include "kgr/key_server.h"
#include "ks/context.h"
#include "ks/internal.h"

namespace kgr::ks {

// ---- node_desc cache ----

StatusOr<NodeRef> FindNode(Context& ctx, uint32_t n_id) {
  auto it = ctx.node_cache.find(n_id);
  if (it != ctx.node_cache.end()) return it->second;
  KGR_ASSIGN_OR_RETURN(NodeDesc d, ctx.nodes.Get(n_id));
  CacheNode(ctx, d);
  it = ctx.node_cache.find(n_id);
  if (it != ctx.node_cache.end()) return it->second;
  return std::make_shared<const NodeDesc>(std::move(d));  // no cache
}

StatusOr<NodeDesc> GetNode(Context& ctx, uint32_t n_id) {
  KGR_ASSIGN_OR_RETURN(NodeRef node, FindNode(ctx, n_id));
  return node->Clone();
}

void CacheNode(Context& ctx, const NodeDesc& d) {
  if (ctx.options.node_cache_entries == 0) return;
  NodeDesc entry = d.Clone();
  // Clones of the entry (one per frame) share the prepared key setup.
  for (SymmetricKeys* k : {&entry.nksk, &entry.prev_nksk}) {
    if (k->valid() && !k->prepared()) (void)k->Prepare();
  }
  auto shared = std::make_shared<const NodeDesc>(std::move(entry));
  auto it = ctx.node_cache.find(d.n_id);
  if (it != ctx.node_cache.end()) {
    it->second = std::move(shared);
    return;
  }
  // Full: evict an arbitrary entry (its secrets are wiped on destruction,
  // when the last frame using it is done).
  if (ctx.node_cache.size() >= ctx.options.node_cache_entries) {
    ctx.node_cache.erase(ctx.node_cache.begin());
  }
  ctx.node_cache.emplace(d.n_id, std::move(shared));
}

Status PutNode(Context& ctx, const NodeDesc& d) {
  Status st = ctx.nodes.Put(d);
  AfterNodeWrite(ctx, d, st);
  ++ctx.stats.node_desc_changes;  // also after a failure: the store decides
  return st;
}

Status PutNodes(Context& ctx, const std::vector<NodeDesc>& batch,
                bool counters_only) {
  Status st = ctx.nodes.PutAll(batch);
  for (const NodeDesc& d : batch) AfterNodeWrite(ctx, d, st);
  if (!counters_only) ++ctx.stats.node_desc_changes;
  return st;
}

void SyncNodeCache(Context& ctx) {
  for (uint32_t n_id : ctx.nodes.TakeChanged()) ctx.node_cache.erase(n_id);
}

void AfterNodeWrite(Context& ctx, const NodeDesc& d, const Status& written) {
  if (written.ok()) {
    CacheNode(ctx, d);
  } else {
    ctx.node_cache.erase(d.n_id);  // the store decides what is true
  }
}

}  // namespace kgr::ks
