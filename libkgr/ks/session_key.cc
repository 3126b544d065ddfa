#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>

#include "kgr/key_server.h"
#include "ks/context.h"
#include "ks/internal.h"

namespace kgr::ks {

// ---- session keys (4.7, 4.9) ----

namespace {

// A request id that has a record already (a retransmission, or another
// instance created it first): the same key again while it lives, else
// refused as stale.
void AnswerExisting(Context& ctx, const FrameHeader& h, const NodeDesc& n1,
                    const GenKey& existing) {
  if (existing.n_id1 != n1.n_id || existing.tombstone()) {
    return SendError(ctx, h, n1, KsErrorCode::kStaleRequest);
  }
  auto n2 = FindNode(ctx, existing.n_id2);
  if (!n2.ok()) return;
  Status st;
  if (existing.step == 2) {
    st = SendKeyAndNotification(ctx, existing, n1, **n2);
  } else {
    st = SendToNode(ctx, n1, h.request_id, h.flags,
                    NnskKeyAns{existing.n_id1, existing.n_id2, existing.version,
                               existing.nnsk.Clone()});
    if (st.ok()) st = SendConfReq(ctx, existing, n1);
  }
  if (!st.ok()) spdlog::warn("ks: resend failed: {}", st.ToString());
}

// Step 2 for the staged keys: created together (one fdatasync, or one etcd
// txn); the ids another instance created first come back in `existing`.
Status CreateStaged(Context& ctx, std::vector<GenKey>* existing) {
  std::vector<const GenKey*> keys;
  keys.reserve(ctx.staged.size());
  for (const Context::Staged& s : ctx.staged) keys.push_back(&s.key);
  auto start = std::chrono::steady_clock::now();
  Status st = ctx.gen_keys.Create(keys, existing);
  ctx.stats.commit_seconds.Observe(
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count());
  return st;
}

const GenKey* FindById(const std::vector<GenKey>& keys, uint64_t id) {
  for (const GenKey& g : keys) {
    if (g.request_id == id) return &g;
  }
  return nullptr;
}

}  // namespace

void CommitStaged(Context& ctx) {
  ctx.gen_keys.Flush();  // the batch's unsynced steps (etcd)
  if (ctx.staged.empty()) return;
  // Step 2: the records are durable before any of their keys leaves the KS.
  std::vector<GenKey> existing;
  Status st = CreateStaged(ctx, &existing);
  for (Context::Staged& s : ctx.staged) {
    if (!st.ok()) {
      spdlog::error("ks: gen_keys not stored: {}", st.ToString());
      SendError(ctx, s.request, *s.n1, KsErrorCode::kInternal);
      continue;
    }
    if (const GenKey* other = FindById(existing, s.key.request_id)) {
      AnswerExisting(ctx, s.request, *s.n1, *other);
      continue;
    }
    // Its durable record answers this id from now on; the floor (persisted
    // by FlushCounters) takes over once the record is gone.
    uint64_t& floor = ctx.request_floors[s.key.n_id1];
    if (s.key.request_id > floor) {
      floor = s.key.request_id;
      ctx.dirty_counters.push_back(s.key.n_id1);
    }
    ++ctx.stats.keys_issued;
    if (spdlog::should_log(spdlog::level::debug)) {  // per key
      spdlog::debug("ks: {} key {:016x} for {} -> {} (version {})",
                    s.key.renewal ? "renewed" : "new", s.key.request_id,
                    FormatNodeId(s.key.n_id1), FormatNodeId(s.key.n_id2),
                    s.key.version);
    }
    Status sent = SendKeyAndNotification(ctx, s.key, *s.n1, *s.n2);
    if (!sent.ok())
      spdlog::warn("ks: key delivery failed: {}", sent.ToString());
  }
  ctx.staged.clear();
}

void SendError(Context& ctx, const FrameHeader& h, const NodeDesc& n,
               KsErrorCode code) {
  ++ctx.stats.refused_requests;
  ++ctx.stats.refusals[static_cast<size_t>(code) % kKsErrorCodes];
  spdlog::warn("ks: refused {} from {} (request {:016x}): {}",
               FrameTypeName(h.type), FormatNodeId(h.sender), h.request_id,
               KsErrorCodeName(code));
  Status st = SendToNode(ctx, n, h.request_id, h.flags, KsError{h.type, code});
  if (!st.ok()) spdlog::warn("ks: ks_error not sent: {}", st.ToString());
}

Status SendKeyAndNotification(Context& ctx, const GenKey& g, const NodeDesc& n1,
                              const NodeDesc& n2) {
  uint8_t flags = g.renewal ? kFlagRenewal : 0;
  KGR_RETURN_IF_ERROR(
      SendToNode(ctx, n1, g.request_id, flags,
                 NnskKeyAns{g.n_id1, g.n_id2, g.version, g.nnsk.Clone()}));
  return SendToNode(ctx, n2, g.request_id, flags,
                    NnskNotReq{g.n_id1, g.version, g.nnsk.Clone(),
                               g.topic3.value_or(TopicId{})});
}

void HandleKeyReq(Context& ctx, const FrameHeader& h, const NodeRef& n1,
                  const NnskKeyReq& req) {
  // One request id, at most one key, ever: a retransmitted request gets the
  // same key again while its record lives; once the key was confirmed or
  // purged (tombstone), or its record dropped under the node's floor, the
  // id is refused as stale and the node asks again under a new one (also
  // when another node's request holds the id).
  // Peek: what this instance holds; an id created elsewhere is found by
  // Create at commit (one etcd round trip per batch, not per request).
  auto existing = ctx.gen_keys.Peek(h.request_id);
  if (existing.ok()) return AnswerExisting(ctx, h, *n1, *existing);
  for (const Context::Staged& s : ctx.staged) {
    if (s.key.request_id == h.request_id) return;  // answered at commit
  }
  auto floor = ctx.request_floors.find(n1->n_id);
  if (h.request_id <= n1->request_floor ||
      (floor != ctx.request_floors.end() && h.request_id <= floor->second)) {
    return SendError(ctx, h, *n1, KsErrorCode::kStaleRequest);
  }
  if (req.n_id2 == n1->n_id || !Contains(n1->allowed_peers, req.n_id2)) {
    return SendError(ctx, h, *n1, KsErrorCode::kPairNotAllowed);
  }
  auto n2 = FindNode(ctx, req.n_id2);
  if (!n2.ok() || (*n2)->state != NodeState::kRegistered) {
    return SendError(ctx, h, *n1, KsErrorCode::kPeerUnknown);
  }
  if (!Contains((*n2)->allowed_peers, n1->n_id)) {
    return SendError(ctx, h, *n1, KsErrorCode::kPairNotAllowed);
  }
  if (ctx.gen_keys.size() + ctx.staged.size() >= ctx.options.max_pending) {
    return SendError(ctx, h, *n1, KsErrorCode::kBusy);
  }
  auto nnsk = SymmetricKeys::Generate();
  if (!nnsk.ok()) return SendError(ctx, h, *n1, KsErrorCode::kInternal);
  GenKey g;
  g.n_id1 = n1->n_id;
  g.request_id = h.request_id;
  g.ctime_unix_ms = ctx.clock.NowUnixMillis();
  g.step = 2;
  g.renewal = (h.flags & kFlagRenewal) != 0;
  g.version = req.version;
  g.n_id2 = req.n_id2;
  g.nnsk = std::move(*nnsk);
  g.topic3 = req.topic3;
  // Staged: written with the other new keys of this batch (CommitStaged).
  ctx.staged.push_back({std::move(g), n1, *std::move(n2), h});
}

Status SendConfReq(Context& ctx, const GenKey& g, const NodeDesc& n1) {
  if (!g.topic4.has_value()) return FailedPreconditionError("no TOPIC4");
  return SendToNode(ctx, n1, g.request_id, g.renewal ? kFlagRenewal : 0,
                    NnskConfReq{g.n_id1, g.n_id2, *g.topic4});
}

void HandleNotAns(Context& ctx, const FrameHeader& h, const NodeDesc& n2,
                  const NnskNotAns& ans) {
  auto g = ctx.gen_keys.Get(h.request_id);
  if (!g.ok() || g->tombstone()) {
    return Drop(ctx, &h, DropReason::kNoPendingKey,
                "no pending key for this request");
  }
  if (g->n_id2 != n2.n_id || ans.n_id2 != n2.n_id || ans.n_id1 != g->n_id1) {
    return Drop(ctx, &h, DropReason::kMismatch,
                "nnsk_not_ans does not match the pending key");
  }
  auto n1 = FindNode(ctx, g->n_id1);
  if (!n1.ok())
    return Drop(ctx, &h, DropReason::kNoPendingKey, "requester vanished");
  if (g->step == 2) {
    GenKey updated = g->Clone();
    updated.step = 5;
    updated.topic4 = ans.topic4;
    // Step 5: gen_keys updated before the confirmation goes out. Not synced:
    // if a crash loses it, the record is back at step 2 and the requester's
    // retransmission makes the KS resend its notification, which the peer
    // answers again with the same TOPIC4.
    ctx.gen_keys.PutUnsynced(updated);
    Status st = SendConfReq(ctx, updated, **n1);
    if (!st.ok()) spdlog::warn("ks: nnsk_conf_req not sent: {}", st.ToString());
    return;
  }
  // Duplicate not_ans: confirm again (idempotent).
  Status st = SendConfReq(ctx, *g, **n1);
  if (!st.ok()) spdlog::warn("ks: nnsk_conf_req not sent: {}", st.ToString());
}

void HandleConfAns(Context& ctx, const FrameHeader& h, const NodeDesc& n1,
                   const NnskConfAns& ans) {
  auto g = ctx.gen_keys.Get(h.request_id);
  // Already confirmed: duplicates are harmless.
  if (!g.ok() || g->tombstone()) return;
  if (g->n_id1 != n1.n_id || ans.n_id2 != g->n_id2 || g->step != 5) {
    return Drop(ctx, &h, DropReason::kMismatch,
                "nnsk_conf_ans does not match the pending key");
  }
  // Step 7: the KS forgets the key but not the request id (a tombstone,
  // dropped by Tick once the node's persisted floor covers it). Not
  // synced: if a crash loses it, the record is back at step 5 (or 2) with
  // the same key, which a late retransmission gets again; the TTL purge
  // turns it into a tombstone later.
  ctx.gen_keys.PutUnsynced(Tombstone(*g));
  ++ctx.stats.keys_confirmed;
  uint64_t now_ms = ctx.clock.NowUnixMillis();
  ctx.stats.establishment_seconds.Observe(
      now_ms > g->ctime_unix_ms ? (now_ms - g->ctime_unix_ms) / 1000.0 : 0.0);
  if (spdlog::should_log(spdlog::level::debug)) {
    spdlog::debug("ks: key {:016x} for {} -> {} confirmed and forgotten",
                  h.request_id, FormatNodeId(g->n_id1), FormatNodeId(g->n_id2));
  }
}

void PurgeGenKeys(Context& ctx) {
  uint64_t now = ctx.clock.NowUnixMillis();
  std::vector<GenKey> expired;
  std::vector<uint64_t> covered;
  ctx.gen_keys.ForEach([&](const GenKey& g) {
    if (g.tombstone()) {
      // Only a floor that is durable may replace the tombstone.
      auto n1 = FindNode(ctx, g.n_id1);
      if (!n1.ok() || g.request_id <= (*n1)->request_floor) {
        covered.push_back(g.request_id);
      }
    } else if (now > g.ctime_unix_ms + ctx.options.gen_key_ttl_ms) {
      expired.push_back(Tombstone(g));
    }
  });
  for (uint64_t id : covered) ctx.gen_keys.DeleteUnsynced(id);
  for (const GenKey& t : expired) {
    // Unsynced: a purge lost by a crash is made again.
    ctx.gen_keys.PutUnsynced(t);
    ++ctx.stats.keys_purged;
    spdlog::warn("ks: purged unconfirmed key {:016x} (older than {} ms)",
                 t.request_id, ctx.options.gen_key_ttl_ms);
  }
}

}  // namespace kgr::ks
