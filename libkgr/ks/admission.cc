#include <spdlog/spdlog.h>

#include <algorithm>
#include <iterator>

#include "kgr/key_server.h"
#include "ks/context.h"
#include "ks/group_state.h"
#include "ks/internal.h"

namespace kgr {

const char* DropReasonName(DropReason reason) {
  static constexpr const char* kNames[] = {
      "malformed",      "oversized", "unexpected",         "unknown_node",
      "not_registered", "revoked",   "already_registered", "stale_key_version",
      "replay",         "bad_mac",   "rate_limited",       "no_pending_key",
      "mismatch",       "internal"};
  static_assert(std::size(kNames) == static_cast<size_t>(DropReason::kCount));
  size_t i = static_cast<size_t>(reason);
  return i < std::size(kNames) ? kNames[i] : "unknown";
}

}  // namespace kgr

namespace kgr::ks {

void Drop(Context& ctx, const FrameHeader* h, DropReason why,
          std::string_view reason) {
  ++ctx.stats.dropped_frames;
  ++ctx.stats.drops[static_cast<size_t>(why)];
  // At most 20 drop lines a second, so a flood cannot flood the log.
  uint64_t second = ctx.clock.NowMonotonicMillis() / 1000;
  if (second != ctx.log_second) {
    if (ctx.unlogged_drops > 0) {
      spdlog::warn("ks: {} more frames dropped without a log line",
                   ctx.unlogged_drops);
    }
    ctx.log_second = second;
    ctx.logged_this_second = 0;
    ctx.unlogged_drops = 0;
  }
  if (++ctx.logged_this_second > 20) {
    ++ctx.unlogged_drops;
    return;
  }
  if (h != nullptr) {
    spdlog::warn("ks: dropped {} from {} (request {:016x}): {}",
                 FrameTypeName(h->type), FormatNodeId(h->sender), h->request_id,
                 reason);
  } else {
    spdlog::warn("ks: dropped message: {}", reason);
  }
}

bool Admit(Context& ctx, const FrameHeader& h) {
  if (!ctx.nodes.Contains(h.sender)) {
    Drop(ctx, &h, DropReason::kUnknownNode, "unknown N_ID");
    return false;
  }
  return true;
}

bool Charge(Context& ctx, const FrameHeader& h, RateLimiter& limiter,
            RateLimiter* global) {
  if (ctx.options.node_frames_per_s <= 0) return true;
  uint64_t now = ctx.clock.NowMonotonicMillis();
  if (limiter.Allow(h.sender, now) &&
      (global == nullptr || ctx.options.registrations_per_s <= 0 ||
       global->Allow(0, now))) {
    return true;
  }
  ++ctx.stats.rate_limited;
  Drop(ctx, &h, DropReason::kRateLimited, "rate limit");
  return false;
}

ReplayWindow& WindowFor(Context& ctx, const NodeDesc& n) {
  auto it = ctx.windows.find(n.n_id);
  if (it == ctx.windows.end()) {
    it = ctx.windows.emplace(n.n_id, ReplayWindow(n.last_counter)).first;
  }
  return it->second;
}

void HandleTopic1(Context& ctx, const Bytes& frame) {
  auto peek = PeekFrameHeader(frame);
  if (!peek.ok())
    return Drop(ctx, nullptr, DropReason::kMalformed, peek.status().message());
  const FrameHeader& h = *peek;
  if (h.type != FrameType::kNnskKeyReq && h.type != FrameType::kNnskNotAns &&
      h.type != FrameType::kNnskConfAns && h.type != FrameType::kNkskRotReq &&
      h.type != FrameType::kCertRenewReq &&
      h.type != FrameType::kGroupSyncReq) {
    return Drop(ctx, &h, DropReason::kUnexpected, "unexpected type on TOPIC1");
  }
  if (!Admit(ctx, h)) return;
  auto found = FindNode(ctx, h.sender);
  if (!found.ok())
    return Drop(ctx, &h, DropReason::kUnknownNode, "unknown N_ID");
  NodeRef node = *std::move(found);
  if (node->state != NodeState::kRegistered) {
    return Drop(ctx, &h, DropReason::kNotRegistered, "node not registered");
  }
  // The current NKSK, or during a rotation the previous one.
  bool under_prev =
      node->prev_nksk.valid() && h.key_version + 1 == node->nksk_version;
  if (h.key_version != node->nksk_version && !under_prev) {
    return Drop(ctx, &h, DropReason::kStaleKeyVersion, "stale NKSK version");
  }
  ReplayWindow& window = WindowFor(ctx, *node);
  if (!window.IsFresh(h.counter))
    return Drop(ctx, &h, DropReason::kReplay, "replayed counter");
  FrameHeader opened;
  auto plain =
      OpenFrame(frame, under_prev ? node->prev_nksk : node->nksk, &opened);
  if (!plain.ok())
    return Drop(ctx, &h, DropReason::kBadMac, plain.status().message());
  // Charged only once the MAC proved the sender: frames carrying another
  // node's N_ID cost that node nothing.
  if (!Charge(ctx, h, ctx.node_limiter)) return;
  window.Accept(h.counter);
  ctx.dirty_counters.push_back(h.sender);
  if (!under_prev && node->prev_nksk.valid()) {
    node = CompleteRotation(ctx, std::move(node));
  }
  switch (h.type) {
    case FrameType::kNkskRotReq: {
      auto req = NkskRotReq::Parse(plain->span());
      if (!req.ok())
        return Drop(ctx, &h, DropReason::kMalformed, req.status().message());
      return HandleRotation(ctx, h, *node, under_prev, *req);
    }
    case FrameType::kCertRenewReq: {
      auto req = CertRenewReq::Parse(plain->span());
      if (!req.ok())
        return Drop(ctx, &h, DropReason::kMalformed, req.status().message());
      return HandleCertRenewal(ctx, h, *node, *req);
    }
    case FrameType::kNnskKeyReq: {
      auto req = NnskKeyReq::Parse(plain->span());
      if (!req.ok())
        return Drop(ctx, &h, DropReason::kMalformed, req.status().message());
      return HandleKeyReq(ctx, h, node, *req);
    }
    case FrameType::kGroupSyncReq: {
      auto req = GroupSyncReq::Parse(plain->span());
      if (!req.ok())
        return Drop(ctx, &h, DropReason::kMalformed, req.status().message());
      return HandleGroupSync(ctx, h, *node, *req);
    }
    case FrameType::kNnskNotAns: {
      auto ans = NnskNotAns::Parse(plain->span());
      if (!ans.ok())
        return Drop(ctx, &h, DropReason::kMalformed, ans.status().message());
      return HandleNotAns(ctx, h, *node, *ans);
    }
    default: {
      auto ans = NnskConfAns::Parse(plain->span());
      if (!ans.ok())
        return Drop(ctx, &h, DropReason::kMalformed, ans.status().message());
      return HandleConfAns(ctx, h, *node, *ans);
    }
  }
}

Status FlushCounters(Context& ctx) {
  if (ctx.dirty_counters.empty()) return OkStatus();
  std::sort(ctx.dirty_counters.begin(), ctx.dirty_counters.end());
  ctx.dirty_counters.erase(
      std::unique(ctx.dirty_counters.begin(), ctx.dirty_counters.end()),
      ctx.dirty_counters.end());
  // What `d` lacks, if anything: a higher counter or floor, or the NKSK
  // marked used.
  auto behind = [&](const NodeDesc& d) {
    auto w = ctx.windows.find(d.n_id);
    auto f = ctx.request_floors.find(d.n_id);
    return w != ctx.windows.end() &&
           (d.last_counter < w->second.highest() || d.nksk_unused ||
            (f != ctx.request_floors.end() && f->second > d.request_floor));
  };
  // Raised over the records as stored, never lowered (another instance
  // raises them too), at most kMaxUpdateRecords records per write.
  auto raise = [&](NodeDescTxn& txn, uint32_t id) {
    auto d = txn.Get(id);
    if (!d.ok() || !behind(*d)) return;
    const ReplayWindow& w = ctx.windows.at(id);
    auto f = ctx.request_floors.find(id);
    bool floor_advanced =
        f != ctx.request_floors.end() && f->second > d->request_floor;
    d->last_counter = std::max(d->last_counter, w.highest());
    if (floor_advanced) d->request_floor = f->second;
    // The node sent frames under its NKSK (ctx.dirty_counters holds only
    // those), so it holds it: its registration answer is not repeated any
    // more (HandleRegistration also checks ctx.dirty_counters until then).
    d->nksk_unused = false;
    txn.Put(*std::move(d));
  };
  // A cached entry is never ahead of the store: if it lacks nothing, the
  // stored record lacks nothing either (and is not read).
  std::vector<uint32_t> ids;
  for (uint32_t id : ctx.dirty_counters) {
    auto cached = ctx.node_cache.find(id);
    if (cached == ctx.node_cache.end() || behind(*cached->second)) {
      ids.push_back(id);
    }
  }
  Status st;
  for (size_t at = 0; at < ids.size() && st.ok(); at += kMaxUpdateRecords) {
    const size_t end = std::min(ids.size(), at + kMaxUpdateRecords);
    st = UpdateNodes(
        ctx,
        [&](NodeDescTxn& txn) -> Status {
          for (size_t i = at; i < end; ++i) raise(txn, ids[i]);
          return OkStatus();
        },
        nullptr, /*counters_only=*/true);
  }
  if (st.ok()) ctx.dirty_counters.clear();
  return st;
}

}  // namespace kgr::ks
