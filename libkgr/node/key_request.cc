// N session key generation and renewal (4.7, 4.9): the requester's steps
// 1, 3 and 6 and the peer's step 4.
#include <spdlog/spdlog.h>

#include <algorithm>

#include "kgr/node_client.h"
#include "node/send_to_ks.h"

namespace kgr {

void NodeClient::RequestKey(uint32_t peer, bool renewal, DoneCallback done,
                            uint64_t timeout_ms) {
  if (!registered()) return done(FailedPreconditionError("not registered"));
  auto rec = ses_.Get(peer);
  if (!rec.ok()) {
    return done(PermissionDeniedError("peer " + FormatNodeId(peer) +
                                      " is not in this node's peer list"));
  }
  if (KeyRequest* k = KeyRequestFor(peer)) {
    if (!k->automatic || !done) {
      return done(AbortedError("a key request for this peer is under way"));
    }
    // A renewal the node started by itself: the caller shares its result.
    k->automatic = false;
    k->done = [first = std::move(k->done), done](Status st) {
      if (first) first(st);
      done(st);
    };
    return;
  }
  auto topic = RandomTopicId();
  if (!topic.ok()) return done(InternalError("CSPRNG failed"));
  uint64_t id = NewKeyRequestId();
  KeyRequest k;
  k.peer = peer;
  k.renewal = renewal || rec->nnsk.valid();
  // Above every version either node may hold for the pair.
  k.version = std::max({rec->key_version,
                        rec->other_nnsk.valid() ? rec->other_version : 0,
                        pairs_[peer].seen_version}) +
              1;
  k.topic3 = *topic;
  k.done = std::move(done);
  Pending p{.request = std::move(k)};
  Schedule(p, timeout_ms);
  auto [it, inserted] = pending_.emplace(id, std::move(p));
  // Route the new TOPIC3 before anyone can send on it.
  RefreshRoutes(peer, &*rec);
  Status st = Transmit(id, it->second);
  if (!st.ok()) Finish(id, st);
}

void NodeClient::OnKeyAns(const FrameHeader& h, const NnskKeyAns& ans) {
  KeyRequest* key = Find<KeyRequest>(h.request_id);
  if (key == nullptr) return Log("dropped", &h, "no key request under way");
  KeyRequest& p = *key;
  if (ans.n_id1 != n_id() || ans.n_id2 != p.peer || ans.version != p.version) {
    return Log("dropped", &h, "nnsk_key_ans does not match the request");
  }
  if (p.got_key) {
    // An answer to our retransmission: the KS never issues a second key
    // for one request id.
    if (!p.nnsk.Equals(ans.nnsk)) {
      Log("dropped", &h, "another key for the same request");
    }
    return;
  }
  // Step 3: the new key waits with the request, not in ses_keys: the key in
  // use stays until step 6 shows that the peer holds the new one. A crash
  // or a failed request before that changes nothing.
  p.nnsk = ans.nnsk.Clone();
  p.got_key = true;  // retransmissions now only prompt the KS to resend
}

void NodeClient::OnConfReq(const FrameHeader& h, const NnskConfReq& req) {
  auto rec = ses_.Get(req.n_id2);
  if (!rec.ok() || req.n_id1 != n_id()) {
    return Log("dropped", &h, "nnsk_conf_req for an unknown pair");
  }
  const KeyRequest* key = Find<KeyRequest>(h.request_id);
  if (key == nullptr) {
    // A retransmitted confirmation of a key we already completed: answer
    // again so the KS can forget it. Anything else is dropped (the KS purges
    // keys nobody confirms).
    if (rec->topic4 == req.topic4) {
      Status st = SendToKs(h.request_id, h.flags, NnskConfAns{req.n_id2});
      if (!st.ok()) Log("nnsk_conf_ans not sent", &h, st.message());
      return;
    }
    return Log("dropped", &h, "no key request under way");
  }
  if (!key->got_key || key->peer != req.n_id2) {
    return Log("dropped", &h, "confirmation before the key");
  }
  // Step 6: the peer holds the new key (it stored it before answering the
  // KS): we send under it from now on. The key it replaces stays accepted
  // (the peer sends under it until it sees a frame under the new one).
  const KeyRequest& p = *key;
  SesKey updated = *std::move(rec);
  // The peer moves to our current key on the first frame of ours under it.
  // If we sent none since it became current (frames_sent counts from
  // there) and the peer never used it, the peer is still on the previous
  // key, which stays. Otherwise the peer may have moved (our data answer
  // under it counts), so the current key becomes the previous one; a peer
  // whose copy of that frame was lost converges by renewing.
  if (updated.has_previous() && pairs_[req.n_id2].previous_until_ms == 0 &&
      updated.frames_sent == 0) {
  } else if (updated.nnsk.valid() && updated.topic4.has_value()) {
    updated.other_version = updated.key_version;
    updated.other_nnsk = std::move(updated.nnsk);
    updated.other_topic3 = updated.topic3;
    updated.other_topic4 = updated.topic4;
    // Every counter accepted under it is at or below its floor.
    updated.other_rx_counter = updated.rx_counter;
  } else {
    updated.other_nnsk = SymmetricKeys{};
    updated.other_rx_counter = 0;
  }
  updated.nnsk = p.nnsk.Clone();
  updated.key_version = p.version;
  updated.topic3 = p.topic3;
  updated.topic4 = req.topic4;
  updated.ctime_unix_ms = clock_.NowUnixMillis();
  updated.frames_sent = 0;
  updated.bytes_sent = 0;
  updated.rx_counter = 0;
  Status st = ses_.Put(updated);
  if (!st.ok()) return Finish(h.request_id, st.Annotate("ses_keys"));
  pairs_[req.n_id2].previous_until_ms = 0;  // until the peer uses the new one
  ++stats_.keys_established;
  if (p.renewal) ++stats_.renewals;
  const Pending& started = pending_.at(h.request_id);  // Schedule()
  const uint64_t begun = started.deadline_ms - started.timeout_ms;
  const uint64_t now = clock_.NowMonotonicMillis();
  stats_.key_request_seconds.Observe(now > begun ? (now - begun) / 1000.0
                                                 : 0.0);
  st = SendToKs(h.request_id, h.flags, NnskConfAns{req.n_id2});
  if (!st.ok()) Log("nnsk_conf_ans not sent", &h, st.message());
  if (spdlog::should_log(spdlog::level::info)) {  // per key: skip the text
    spdlog::info("node {}: session key v{} with {} established",
                 FormatNodeId(n_id()), updated.key_version,
                 FormatNodeId(req.n_id2));
  }
  Finish(h.request_id, OkStatus());
}

bool NodeClient::OurRequestWins(uint32_t peer, uint64_t their_id) {
  // Both sides of a pair asked for a new key at once: the request with the
  // larger request id wins on both nodes; the other is abandoned (its
  // gen_keys record is purged by the KS).
  for (auto& [id, p] : pending_) {
    const auto* k = std::get_if<KeyRequest>(&p.request);
    if (k == nullptr || k->peer != peer || id == their_id) continue;
    if (id > their_id) return true;
    Finish(id, AbortedError("crossed by the peer's own renewal"));
    break;
  }
  return false;
}

void NodeClient::OnNotReq(const FrameHeader& h, const NnskNotReq& req) {
  auto rec = ses_.Get(req.n_id1);
  if (!rec.ok()) {
    return Log("dropped", &h, "peer not in this node's peer list");
  }
  if (OurRequestWins(req.n_id1, h.request_id)) {
    return Log("dropped", &h, "crossed renewal: our request wins");
  }
  // The same key again (the KS retransmits it; we may have restarted
  // since): answer again with the TOPIC we chose then. It is stored, so
  // this holds across our restarts and never makes a second topic.
  auto same = [&](const SymmetricKeys& k, uint32_t version) {
    return k.valid() && version == req.version && k.Equals(req.nnsk);
  };
  std::optional<TopicId> stored;
  if (same(rec->nnsk, rec->key_version)) stored = rec->topic3;
  if (same(rec->other_nnsk, rec->other_version)) stored = rec->other_topic3;
  if (stored.has_value()) {
    Status st =
        SendToKs(h.request_id, h.flags, NnskNotAns{req.n_id1, n_id(), *stored});
    if (!st.ok()) Log("nnsk_not_ans not sent", &h, st.message());
    return;
  }
  // Pair key versions only grow: an older notification (a replay) must
  // not replace a key we hold. The current version with another key
  // replaces the current key: a requester that died before step 6 of its
  // first key asks again with the version it knows.
  bool in_use = rec->nnsk.valid() && rec->topic4.has_value() &&
                req.version != rec->key_version;
  // A next key (not used by the requester yet) is never a reason to refuse:
  // a requester that lost it (it died before step 6, or restarted and asks
  // a lower version) must be able to pair again; a late older notification
  // that replaces it costs a renewal at most (unanswered data).
  if (in_use && req.version < rec->key_version) {
    return Log("dropped", &h, "stale key version");
  }
  auto topic = RandomTopicId();
  if (!topic.ok()) return;
  // Step 4: our TOPIC3 is new, TOPIC4 is N1's TOPIC3. With a key in use,
  // the new one is the next key: we keep sending under the current one
  // until N1 shows (by a frame under the new one) that it completed step 6;
  // a failed or abandoned renewal then changes nothing here.
  SesKey updated = *std::move(rec);
  if (in_use) {
    updated.other_version = req.version;
    updated.other_rx_counter = 0;
    updated.other_nnsk = req.nnsk.Clone();
    updated.other_topic3 = *topic;
    updated.other_topic4 = req.topic3;
  } else {
    updated.nnsk = req.nnsk.Clone();
    updated.key_version = req.version;
    updated.topic3 = *topic;
    updated.topic4 = req.topic3;
    updated.ctime_unix_ms = clock_.NowUnixMillis();
    updated.frames_sent = 0;
    updated.bytes_sent = 0;
    updated.rx_counter = 0;
    updated.other_nnsk = SymmetricKeys{};
    updated.other_rx_counter = 0;
  }
  Status st = ses_.Put(updated);
  if (!st.ok()) return Log("ses_keys update failed", &h, st.message());
  ++stats_.keys_received;
  RefreshRoutes(req.n_id1, &updated);
  if (spdlog::should_log(spdlog::level::info)) {
    spdlog::info("node {}: session key v{} with {} received",
                 FormatNodeId(n_id()), req.version, FormatNodeId(req.n_id1));
  }
  st = SendToKs(h.request_id, h.flags, NnskNotAns{req.n_id1, n_id(), *topic});
  if (!st.ok()) Log("nnsk_not_ans not sent", &h, st.message());
}

}  // namespace kgr
