// NodeClient: which key of a pair is in use while a renewal is under way,
// and how two nodes that hold different keys converge (docs/protocol.md
// section 8). The procedures themselves are in node_client.cc.
#include <spdlog/spdlog.h>

#include <algorithm>

#include "kgr/node_client.h"

namespace kgr {

uint64_t NodeClient::NewKeyRequestId() {
  // The frame counter grows and never repeats across restarts (it is above
  // a persisted floor), so ids grow per node and the KS can keep one floor
  // per node instead of every id it served. 12 random low bits keep two
  // nodes that draw a counter in the same microsecond apart (gen_keys is
  // keyed by request id alone); counters stay below 2^52 until 2112.
  uint64_t counter = counter_.Next(clock_.NowUnixMicros());
  uint64_t low = 0;
  if (auto r = RandomU32(); r.ok()) low = *r & 0xfff;
  return (counter << 12) | low;
}

void NodeClient::RefreshRoutes(uint32_t peer, const SesKey* rec) {
  PairState& ps = pairs_[peer];
  for (const std::string& t : ps.routes) topic_to_peer_.erase(t);
  ps.routes.clear();
  auto route = [&](const Topic& id) {
    if (!id.has_value()) return;
    ps.routes.push_back(MyTopic(*id));
    topic_to_peer_[ps.routes.back()] = peer;
  };
  if (rec != nullptr) {
    if (rec->nnsk.valid()) route(rec->topic3);
    if (rec->other_nnsk.valid()) route(rec->other_topic3);
  }
  if (const KeyRequest* k = KeyRequestFor(peer)) route(k->topic3);
}

StatusOr<SesKey> NodeClient::Promote(const SesKey& rec, uint64_t counter) {
  SesKey updated = rec.Clone();
  std::swap(updated.key_version, updated.other_version);
  std::swap(updated.nnsk, updated.other_nnsk);
  std::swap(updated.topic3, updated.other_topic3);
  std::swap(updated.topic4, updated.other_topic4);
  // The current key becomes the previous one with its receive floor.
  updated.other_rx_counter = rec.rx_counter;
  updated.ctime_unix_ms = clock_.NowUnixMillis();
  updated.frames_sent = 0;
  updated.bytes_sent = 0;
  // The frame that shows the peer holds the key is accepted: the durable
  // receive floor goes above it in the same write.
  updated.rx_counter = counter + kRxReserveMicros;
  // Synced: after a power loss we must not fall back to sending under the
  // old key, which the peer stops accepting after its grace period.
  Status st = ses_.Put(updated);
  if (!st.ok()) return st.Annotate("ses_keys");
  PairState& ps = pairs_[rec.n_id];
  ps.rx_version = updated.key_version;
  ps.rx_floor = updated.rx_counter;
  ps.previous_until_ms =
      clock_.NowUnixMillis() + options_.previous_key_grace_ms;
  RefreshRoutes(rec.n_id, &updated);
  spdlog::info("node {}: session key v{} with {} in use (the peer uses it)",
               FormatNodeId(n_id()), updated.key_version,
               FormatNodeId(rec.n_id));
  return updated;
}

void NodeClient::ExpirePrevious() {
  uint64_t wall = clock_.NowUnixMillis();
  for (auto& [peer, ps] : pairs_) {
    if (ps.previous_until_ms == 0 || wall < ps.previous_until_ms) continue;
    ps.previous_until_ms = 0;
    auto rec = ses_.Get(peer);
    if (!rec.ok() || !rec->has_previous()) continue;
    ps.windows.erase(rec->other_version);
    SesKey updated = *std::move(rec);
    updated.other_nnsk = SymmetricKeys{};
    updated.other_version = 0;
    updated.other_rx_counter = 0;
    updated.other_topic3.reset();
    updated.other_topic4.reset();
    // Unsynced: if lost, the previous key is accepted again until the peer
    // shows once more that it uses the current one.
    ses_.PutUnsynced(updated);
    RefreshRoutes(peer, &updated);
  }
}

void NodeClient::Converge(uint32_t peer, std::string_view why) {
  if (!registered()) return;
  auto rec = ses_.Get(peer);
  if (!rec.ok() || !rec->nnsk.valid()) return;
  PairState& ps = pairs_[peer];
  uint64_t now = clock_.NowMonotonicMillis();
  if (now < ps.next_converge_ms) return;
  if (KeyRequestFor(peer) != nullptr) return;
  uint64_t first = std::max<uint64_t>(options_.converge_backoff_ms, 1);
  ps.converge_backoff_ms =
      ps.converge_backoff_ms == 0
          ? first
          : std::min(ps.converge_backoff_ms * 2, first * 64);
  ps.next_converge_ms = now + ps.converge_backoff_ms;
  spdlog::warn("node {}: renewing the key with {}: {}", FormatNodeId(n_id()),
               FormatNodeId(peer), why);
  RequestKey(peer, true, [this, peer](Status st) {
    if (!st.ok() && st.code() != StatusCode::kAborted) {
      spdlog::warn("node {}: renewal with {} failed: {}", FormatNodeId(n_id()),
                   FormatNodeId(peer), st.ToString());
    }
  });
  if (KeyRequest* k = KeyRequestFor(peer)) k->automatic = true;  // joinable
}

void NodeClient::ReplyData(uint32_t peer, const SesKey& rec,
                           const FrameHeader& h, SecretBytes reply) {
  if (!rec.nnsk.valid() || !rec.topic4.has_value()) {
    return Log("no reply", &h, "no TOPIC4 yet");
  }
  // Under the current key whatever key the request came under: a peer still
  // on our previous key holds the current one as its next, and our answer
  // shows it that we use it.
  FrameHeader out;
  out.sender = n_id();
  out.key_version = rec.key_version;
  out.counter = counter_.Next(clock_.NowUnixMicros());
  out.request_id = h.request_id;
  size_t reply_size = reply.size();
  auto sealed = SealBody(out, NodeDataAns{n_id(), std::move(reply)}, rec.nnsk);
  if (!sealed.ok()) return;
  Status counted = CountUse(peer, reply_size);
  if (!counted.ok()) return Log("no reply", &h, counted.message());
  Status st = transport_.Publish(PeerTopic(peer, *rec.topic4), *sealed);
  if (!st.ok()) return Log("node_data_ans not sent", &h, st.message());
  ++stats_.data_sent;
}

}  // namespace kgr
