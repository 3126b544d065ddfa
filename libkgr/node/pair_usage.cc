// N per-pair durable state that is not a key: receive floors, usage
// counters reserved ahead, and the lifetime policy that renews keys.
#include <spdlog/spdlog.h>

#include <algorithm>

#include "kgr/node_client.h"

namespace kgr {

Status NodeClient::ReserveRx(SesKey& rec, KeySlot slot, uint64_t counter) {
  SesKeysStore::Batch batch = ses_.NewBatch();
  SesKey updated = rec.Clone();
  const bool current = slot == KeySlot::kCurrent;
  (current ? updated.rx_counter : updated.other_rx_counter) =
      counter + kRxReserveMicros;
  KGR_RETURN_IF_ERROR(batch.Put(updated));
  // The in-memory floors (rx_version/rx_floor) are those of current keys.
  std::vector<std::pair<uint32_t, uint64_t>> raised;
  if (current) raised.emplace_back(rec.n_id, updated.rx_counter);
  // Other pairs receiving now, past half of their reservation: in the same
  // write, so that many active pairs cost one sync, not one each.
  for (auto& [peer, ps] : pairs_) {
    if (peer == rec.n_id || ps.rx_version == 0) continue;
    auto w = ps.windows.find(ps.rx_version);
    if (w == ps.windows.end() ||
        w->second.highest() + kRxReserveMicros / 2 <= ps.rx_floor) {
      continue;
    }
    auto other = ses_.Get(peer);
    if (!other.ok() || other->key_version != ps.rx_version) continue;
    other->rx_counter = w->second.highest() + kRxReserveMicros;
    KGR_RETURN_IF_ERROR(batch.Put(*other));
    raised.emplace_back(peer, other->rx_counter);
  }
  KGR_RETURN_IF_ERROR(ses_.Apply(std::move(batch)));
  for (const auto& [peer, floor] : raised) pairs_[peer].rx_floor = floor;
  if (current) pairs_[rec.n_id].rx_version = rec.key_version;
  rec = std::move(updated);
  return OkStatus();
}

Status NodeClient::Shutdown() {
  stopped_ = true;
  SesKeysStore::Batch batch = ses_.NewBatch();
  for (auto& [peer, ps] : pairs_) {
    auto rec = ses_.Get(peer);
    if (!rec.ok() || !rec->nnsk.valid()) continue;
    bool changed = false;
    // The exact receive floor: nothing is accepted after this.
    auto w = ps.windows.find(rec->key_version);
    if (w != ps.windows.end() && w->second.highest() < rec->rx_counter) {
      rec->rx_counter = w->second.highest();
      changed = true;
    }
    auto o = rec->has_previous() ? ps.windows.find(rec->other_version)
                                 : ps.windows.end();
    if (o != ps.windows.end() && o->second.highest() < rec->other_rx_counter) {
      rec->other_rx_counter = o->second.highest();
      changed = true;
    }
    auto [frames, bytes] = ActualUsage(*rec);
    if (frames != rec->frames_sent || bytes != rec->bytes_sent) {
      rec->frames_sent = frames;
      rec->bytes_sent = bytes;
      changed = true;
    }
    if (changed) KGR_RETURN_IF_ERROR(batch.Put(*rec));
  }
  if (batch.size() == 0) return OkStatus();
  return ses_.Apply(std::move(batch));
}

const KeyPolicy& NodeClient::PolicyFor(uint32_t peer) const {
  auto it = options_.pair_policy.find(peer);
  return it != options_.pair_policy.end() ? it->second : options_.policy;
}

double NodeClient::Used(const SesKey& k) const {
  const KeyPolicy& pol = PolicyFor(k.n_id);
  double used = 0;
  if (pol.max_age_ms && k.ctime_unix_ms) {
    uint64_t now = clock_.NowUnixMillis();
    uint64_t age = now > k.ctime_unix_ms ? now - k.ctime_unix_ms : 0;
    used = std::max(used, static_cast<double>(age) / pol.max_age_ms);
  }
  auto [frames, bytes] = ActualUsage(k);
  if (pol.max_frames) {
    used = std::max(used, static_cast<double>(frames) / pol.max_frames);
  }
  if (pol.max_bytes) {
    used = std::max(used, static_cast<double>(bytes) / pol.max_bytes);
  }
  return used;
}

std::pair<uint64_t, uint64_t> NodeClient::ActualUsage(const SesKey& k) const {
  auto it = pairs_.find(k.n_id);
  if (it != pairs_.end() && it->second.has_usage &&
      it->second.usage_version == k.key_version &&
      it->second.usage_ctime == k.ctime_unix_ms) {
    return {it->second.frames, it->second.bytes};
  }
  return {k.frames_sent, k.bytes_sent};
}

NodeClient::PairState& NodeClient::UsageFor(const SesKey& k) {
  PairState& ps = pairs_[k.n_id];
  if (!ps.has_usage || ps.usage_version != k.key_version ||
      ps.usage_ctime != k.ctime_unix_ms) {
    // A new key (counted from 0), or the first use since the start: the
    // stored values, reserved ahead or exact, are the safe start.
    ps.has_usage = true;
    ps.usage_version = k.key_version;
    ps.usage_ctime = k.ctime_unix_ms;
    ps.frames = k.frames_sent;
    ps.bytes = k.bytes_sent;
  }
  return ps;
}

namespace {

// How far usage is reserved ahead for a limit (0: none) of the policy.
uint64_t UsageChunk(uint64_t limit, uint64_t cap) {
  return limit ? std::clamp<uint64_t>(limit / 16, 1, cap) : cap;
}

}  // namespace

Status NodeClient::CountUse(uint32_t peer, size_t bytes) {
  KGR_ASSIGN_OR_RETURN(SesKey rec, ses_.Get(peer));
  PairState& ps = UsageFor(rec);
  ps.frames += 1;
  ps.bytes += bytes;
  if (ps.frames <= rec.frames_sent && ps.bytes <= rec.bytes_sent) {
    return OkStatus();  // within the durable reservation
  }
  const KeyPolicy& pol = PolicyFor(peer);
  rec.frames_sent = ps.frames + UsageChunk(pol.max_frames, kUsageReserveFrames);
  rec.bytes_sent = ps.bytes + UsageChunk(pol.max_bytes, kUsageReserveBytes);
  Status st = ses_.Put(rec);
  if (!st.ok()) {  // not sent: not counted
    ps.frames -= 1;
    ps.bytes -= bytes;
  }
  return st.Annotate("reserving usage in ses_keys");
}

void NodeClient::RenewByPolicy() {
  if (!registered()) return;
  uint64_t now = clock_.NowMonotonicMillis();
  std::vector<uint32_t> due;  // started after the scan (RequestKey writes)
  ses_.ForEach([&](const SesKey& k) {
    const KeyPolicy& pol = PolicyFor(k.n_id);
    if (!pol.limited() || !k.nnsk.valid() || !k.topic4.has_value()) return;
    PairState& ps = pairs_[k.n_id];
    if (ps.renew_point_version != k.key_version) {
      // This key's own renewal point, within renew_at ± jitter.
      double j = pol.jitter;
      double r = 0.5;
      if (auto x = RandomU32(); x.ok()) r = *x / 4294967296.0;
      ps.renew_point = pol.renew_at * (1 - j + 2 * j * r);
      ps.renew_point_version = k.key_version;
    }
    if (now < ps.next_auto_renew_ms || Used(k) < ps.renew_point) return;
    // The peer renewed (its key waits as our next one until it uses it):
    // ours would replace the key it sends under. Only at the limit itself.
    if (k.has_next() && Used(k) < 1.0) return;
    if (KeyRequestFor(k.n_id) != nullptr) return;
    due.push_back(k.n_id);
  });
  for (uint32_t peer : due) {
    spdlog::info("node {}: renewing the key with {} (policy)",
                 FormatNodeId(n_id()), FormatNodeId(peer));
    RequestKey(peer, true, [this, peer](Status st) {
      if (st.ok() || st.code() == StatusCode::kAborted) return;
      // Back off before the next automatic attempt.
      pairs_[peer].next_auto_renew_ms =
          clock_.NowMonotonicMillis() + options_.max_retry_ms;
      spdlog::warn("node {}: renewal with {} failed: {}", FormatNodeId(n_id()),
                   FormatNodeId(peer), st.ToString());
    });
    if (KeyRequest* k = KeyRequestFor(peer)) k->automatic = true;  // joinable
  }
}

}  // namespace kgr
