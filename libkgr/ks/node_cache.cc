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

Status UpdateNodes(Context& ctx, const NodeDescChange& change,
                   std::vector<NodeDesc>* written, bool counters_only) {
  std::vector<NodeDesc> mine;
  Status st = ctx.nodes.Update(change, &mine);
  if (st.ok()) {
    for (const NodeDesc& d : mine) CacheNode(ctx, d);
  } else {
    SyncNodeCache(ctx);  // the records found changed are read again
  }
  // Also after a failure: a write that timed out may have been made.
  if (!counters_only && (!mine.empty() || !st.ok())) {
    ++ctx.stats.node_desc_changes;
  }
  if (written != nullptr) *written = std::move(mine);
  return st;
}

void SyncNodeCache(Context& ctx) {
  for (uint32_t n_id : ctx.nodes.TakeChanged()) ctx.node_cache.erase(n_id);
}

}  // namespace kgr::ks
