#include "kgr/key_server.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "ks/internal.h"

namespace kgr {

void KeyServer::Drop(const FrameHeader* h, std::string_view reason) {
  ++stats_.dropped_frames;
  // At most 20 drop lines a second, so a flood cannot flood the log.
  uint64_t second = clock_.NowMonotonicMillis() / 1000;
  if (second != log_second_) {
    if (unlogged_drops_ > 0) {
      spdlog::warn("ks: {} more frames dropped without a log line",
                   unlogged_drops_);
    }
    log_second_ = second;
    logged_this_second_ = 0;
    unlogged_drops_ = 0;
  }
  if (++logged_this_second_ > 20) {
    ++unlogged_drops_;
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

bool KeyServer::Admit(const FrameHeader& h) {
  if (!nodes_.Contains(h.sender)) {
    Drop(&h, "unknown N_ID");
    return false;
  }
  return true;
}

bool KeyServer::Charge(const FrameHeader& h, RateLimiter& limiter,
                       RateLimiter* global) {
  if (options_.node_frames_per_s <= 0) return true;
  uint64_t now = clock_.NowMonotonicMillis();
  if (limiter.Allow(h.sender, now) &&
      (global == nullptr || options_.registrations_per_s <= 0 ||
       global->Allow(0, now))) {
    return true;
  }
  ++stats_.rate_limited;
  Drop(&h, "rate limit");
  return false;
}

ReplayWindow& KeyServer::WindowFor(const NodeDesc& n) {
  auto it = windows_.find(n.n_id);
  if (it == windows_.end()) {
    it = windows_.emplace(n.n_id, ReplayWindow(n.last_counter)).first;
  }
  return it->second;
}

void KeyServer::HandleTopic1(const Bytes& frame) {
  auto peek = PeekFrameHeader(frame);
  if (!peek.ok()) return Drop(nullptr, peek.status().message());
  const FrameHeader& h = *peek;
  if (h.type != FrameType::kNnskKeyReq && h.type != FrameType::kNnskNotAns &&
      h.type != FrameType::kNnskConfAns && h.type != FrameType::kNkskRotReq) {
    return Drop(&h, "unexpected type on TOPIC1");
  }
  if (!Admit(h)) return;
  auto found = FindNode(h.sender);
  if (!found.ok()) return Drop(&h, "unknown N_ID");
  NodeRef node = *std::move(found);
  if (node->state != NodeState::kRegistered) {
    return Drop(&h, "node not registered");
  }
  // The current NKSK, or during a rotation the previous one.
  bool under_prev =
      node->prev_nksk.valid() && h.key_version + 1 == node->nksk_version;
  if (h.key_version != node->nksk_version && !under_prev) {
    return Drop(&h, "stale NKSK version");
  }
  ReplayWindow& window = WindowFor(*node);
  if (!window.IsFresh(h.counter)) return Drop(&h, "replayed counter");
  FrameHeader opened;
  auto plain =
      OpenFrame(frame, under_prev ? node->prev_nksk : node->nksk, &opened);
  if (!plain.ok()) return Drop(&h, plain.status().message());
  // Charged only once the MAC proved the sender: frames carrying another
  // node's N_ID cost that node nothing.
  if (!Charge(h, node_limiter_)) return;
  window.Accept(h.counter);
  dirty_counters_.push_back(h.sender);
  if (!under_prev && node->prev_nksk.valid()) {
    // The node used the new NKSK: the rotation is complete.
    NodeDesc done = node->Clone();
    done.prev_nksk = SymmetricKeys{};
    Status st = PutNode(done);
    if (!st.ok())
      spdlog::error("ks: rotation not completed: {}", st.ToString());
    else
      node = std::make_shared<const NodeDesc>(std::move(done));
    rotations_.erase(h.sender);
    spdlog::info("ks: node {} uses its new NKSK (version {})",
                 FormatNodeId(h.sender), node->nksk_version);
  }
  switch (h.type) {
    case FrameType::kNkskRotReq: {
      auto req = NkskRotReq::Parse(plain->span());
      if (!req.ok()) return Drop(&h, req.status().message());
      return HandleRotation(h, *node, under_prev, *req);
    }
    case FrameType::kNnskKeyReq: {
      auto req = NnskKeyReq::Parse(plain->span());
      if (!req.ok()) return Drop(&h, req.status().message());
      return HandleKeyReq(h, node, *req);
    }
    case FrameType::kNnskNotAns: {
      auto ans = NnskNotAns::Parse(plain->span());
      if (!ans.ok()) return Drop(&h, ans.status().message());
      return HandleNotAns(h, *node, *ans);
    }
    default: {
      auto ans = NnskConfAns::Parse(plain->span());
      if (!ans.ok()) return Drop(&h, ans.status().message());
      return HandleConfAns(h, *node, *ans);
    }
  }
}

Status KeyServer::FlushCounters() {
  if (dirty_counters_.empty()) return OkStatus();
  std::sort(dirty_counters_.begin(), dirty_counters_.end());
  dirty_counters_.erase(
      std::unique(dirty_counters_.begin(), dirty_counters_.end()),
      dirty_counters_.end());
  std::vector<NodeDesc> batch;
  for (uint32_t id : dirty_counters_) {
    auto d = GetNode(id);
    auto w = windows_.find(id);
    if (!d.ok() || w == windows_.end()) continue;
    auto f = request_floors_.find(id);
    bool floor_advanced =
        f != request_floors_.end() && f->second > d->request_floor;
    if (d->last_counter >= w->second.highest() && !floor_advanced &&
        !d->nksk_unused) {
      continue;
    }
    NodeDesc updated = d->Clone();
    updated.last_counter = std::max(d->last_counter, w->second.highest());
    if (floor_advanced) updated.request_floor = f->second;
    // The node sent frames under its NKSK (dirty_counters_ holds only
    // those), so it holds it: its registration answer is not repeated any
    // more (HandleRegistration also checks dirty_counters_ until then).
    updated.nksk_unused = false;
    batch.push_back(std::move(updated));
  }
  Status st = batch.empty() ? OkStatus() : PutNodes(batch);
  if (st.ok()) dirty_counters_.clear();
  return st;
}

}  // namespace kgr
