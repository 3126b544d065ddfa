#include "kgr/node_client.h"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace kgr {
namespace {

Status KsRefusal(const KsError& err) {
  std::string why(KsErrorCodeName(err.code));
  switch (err.code) {
    case KsErrorCode::kPairNotAllowed:
      return PermissionDeniedError(why);
    case KsErrorCode::kPeerUnknown:
      return NotFoundError(why);
    case KsErrorCode::kBusy:
      return ResourceExhaustedError(why);
    case KsErrorCode::kInternal:
      return InternalError(why);
    case KsErrorCode::kStaleRequest:
      return UnavailableError(why);
  }
  return InternalError(why);
}

}  // namespace

NodeClient::NodeClient(OwnData own, Tpm& tpm, Transport& transport,
                       SesKeysStore& ses, Clock& clock,
                       NodeClientOptions options)
    : own_(std::move(own)),
      topic2_(MyTopic(own_.identity.own_topic)),
      tpm_(tpm),
      transport_(transport),
      ses_(ses),
      clock_(clock),
      options_(options),
      counter_(options.counter_floor) {}

std::string NodeClient::MyTopic(const TopicId& id) const {
  return TopicName(own_.identity.topic_prefix, NodeIdentity(n_id()), id);
}

std::string NodeClient::PeerTopic(uint32_t peer, const TopicId& id) const {
  return TopicName(own_.identity.topic_prefix, NodeIdentity(peer), id);
}

void NodeClient::Log(std::string_view what, const FrameHeader* h,
                     std::string_view why) {
  if (h != nullptr) {
    spdlog::warn("node {}: {} {} from {} (request {:016x}): {}",
                 FormatNodeId(n_id()), what, FrameTypeName(h->type),
                 FormatNodeId(h->sender), h->request_id, why);
  } else {
    spdlog::warn("node {}: {}: {}", FormatNodeId(n_id()), what, why);
  }
}

Status NodeClient::Start() {
  // One subscription for everything sent to us: our whole subtree, which the
  // broker's ACL lets only us read. TOPIC2 and every TOPIC3 are routed here,
  // so a key procedure never waits for a SUBSCRIBE and subscriptions do not
  // grow with renewals.
  KGR_RETURN_IF_ERROR(transport_.Subscribe(own_.identity.topic_prefix + "/" +
                                           NodeIdentity(n_id()) + "/#"));
  ses_.ForEach([&](const SesKey& k) { RefreshRoutes(k.n_id, &k); });
  spdlog::info("node {}: ready ({}registered, {} peers)", FormatNodeId(n_id()),
               registered() ? "" : "not ", ses_.size());
  return OkStatus();
}

// ---- sending to the KS ----

template <typename Body>
Status NodeClient::SendToKs(uint64_t request_id, uint8_t flags,
                            const Body& body) {
  if (!own_.ks.has_value()) return FailedPreconditionError("not registered");
  FrameHeader h;
  h.flags = flags;
  h.sender = n_id();
  h.key_version = own_.ks->version;
  h.counter = counter_.Next(clock_.NowUnixMicros());
  h.request_id = request_id;
  KGR_ASSIGN_OR_RETURN(Bytes frame, SealBody(h, body, own_.ks->nksk));
  return transport_.Publish(
      TopicName(own_.identity.topic_prefix, kKsIdentity, own_.ks->ks_topic1),
      frame);
}

Status NodeClient::Transmit(uint64_t request_id, Pending& p) {
  ++p.attempts;
  switch (p.kind) {
    case Kind::kKey:
      return SendToKs(request_id, p.renewal ? kFlagRenewal : 0,
                      NnskKeyReq{p.peer, p.version, p.topic3});
    case Kind::kRotate:
      return SendToKs(request_id, 0, NkskRotReq{p.ephemeral.public_key});
    case Kind::kData: {
      auto rec = ses_.Get(p.peer);
      if (!rec.ok() || !rec->nnsk.valid() || !rec->topic4.has_value()) {
        return FailedPreconditionError("no session key with peer " +
                                       FormatNodeId(p.peer));
      }
      if (PolicyFor(p.peer).limited() && Used(*rec) >= 1.0) {
        return ResourceExhaustedError(
            "the key with peer " + FormatNodeId(p.peer) +
            " reached its policy limit; a renewal is needed");
      }
      FrameHeader h;
      h.sender = n_id();
      h.key_version = rec->key_version;
      h.counter = counter_.Next(clock_.NowUnixMicros());
      h.request_id = request_id;
      KGR_ASSIGN_OR_RETURN(
          Bytes frame,
          SealBody(h, NodeDataReq{p.peer, p.data.Clone()}, rec->nnsk));
      KGR_RETURN_IF_ERROR(CountUse(p.peer, p.data.size()));
      return transport_.Publish(PeerTopic(p.peer, *rec->topic4), frame);
    }
  }
  return InternalError("unknown request kind");
}

void NodeClient::Finish(uint64_t request_id, Status status) {
  auto it = pending_.find(request_id);
  if (it == pending_.end()) return;
  Pending p = std::move(it->second);
  pending_.erase(it);
  if (p.kind == Kind::kKey) {
    auto rec = ses_.Get(p.peer);
    RefreshRoutes(p.peer, rec.ok() ? &*rec : nullptr);
  }
  if (p.kind == Kind::kData) {
    if (p.reply) p.reply(status);
  } else if (p.done) {
    p.done(status);
  }
}

Status NodeClient::ReserveRx(SesKey rec, uint64_t counter) {
  SesKeysStore::Batch batch = ses_.NewBatch();
  rec.rx_counter = counter + kRxReserveMicros;
  KGR_RETURN_IF_ERROR(batch.Put(rec));
  std::vector<std::pair<uint32_t, uint64_t>> raised{{rec.n_id, rec.rx_counter}};
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
  pairs_[rec.n_id].rx_version = rec.key_version;
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
    for (const auto& [id, p] : pending_) {
      if (p.kind == Kind::kKey && p.peer == k.n_id) return;
    }
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
    for (auto& [id, p] : pending_) {  // callers may join it
      if (p.kind == Kind::kKey && p.peer == peer) p.automatic = true;
    }
  }
}

void NodeClient::Tick() {
  uint64_t now = clock_.NowMonotonicMillis();
  TickRegistration(now);
  RenewByPolicy();
  std::vector<uint64_t> expired;
  for (auto& [id, p] : pending_) {
    if (now >= p.deadline_ms) {
      expired.push_back(id);
    } else if (now >= p.next_retry_ms) {
      // Also after nnsk_key_ans: if the KS lost the peer's answer (it
      // restarted), our retransmission makes it resend its part.
      Status st = Transmit(id, p);
      if (!st.ok()) Log("retransmission failed", nullptr, st.message());
      uint64_t jitter = 0;
      if (auto r = RandomU32(); r.ok()) jitter = *r % (p.backoff_ms / 2 + 1);
      p.next_retry_ms = now + p.backoff_ms * 3 / 4 + jitter;
      p.backoff_ms = std::min(p.backoff_ms * 2, options_.max_retry_ms);
    }
  }
  for (uint64_t id : expired) {
    const Pending& p = pending_.at(id);
    if (p.kind == Kind::kData) {
      Converge(p.peer, "a data request went unanswered");
    }
    std::string who = p.kind == Kind::kData ? "peer " + FormatNodeId(p.peer)
                      : p.got_key
                          ? "peer " + FormatNodeId(p.peer) +
                                " (it did not confirm the key: offline?)"
                          : std::string("the key server");
    Finish(id,
           DeadlineExceededError("no answer from " + who + " within " +
                                 std::to_string(p.timeout_ms) + " ms (" +
                                 std::to_string(p.attempts) + " attempts)"));
  }
  ExpirePrevious();
}

// ---- requests ----

void NodeClient::Schedule(Pending& p, uint64_t timeout_ms) {
  p.timeout_ms = timeout_ms ? timeout_ms : options_.request_timeout_ms;
  uint64_t now = clock_.NowMonotonicMillis();
  p.deadline_ms = now + p.timeout_ms;
  p.backoff_ms = options_.first_retry_ms;
  p.next_retry_ms = now + p.backoff_ms;
}

Status NodeClient::LoadPeers(const std::vector<uint32_t>& peers) {
  std::vector<SesKey> batch;
  for (uint32_t peer : peers) {
    if (peer == n_id())
      return InvalidArgumentError("a node cannot pair with itself");
    if (ses_.Get(peer).ok()) continue;
    SesKey k;
    k.n_id = peer;
    batch.push_back(std::move(k));
  }
  if (batch.empty()) return OkStatus();
  return ses_.PutAll(batch);
}

void NodeClient::RequestKey(uint32_t peer, bool renewal, DoneCallback done,
                            uint64_t timeout_ms) {
  if (!registered()) return done(FailedPreconditionError("not registered"));
  auto rec = ses_.Get(peer);
  if (!rec.ok()) {
    return done(PermissionDeniedError("peer " + FormatNodeId(peer) +
                                      " is not in this node's peer list"));
  }
  for (auto& [id, p] : pending_) {
    if (p.kind == Kind::kKey && p.peer == peer && p.automatic && done) {
      // A renewal the node started by itself: the caller shares its result.
      p.automatic = false;
      p.done = [first = std::move(p.done), done](Status st) {
        if (first) first(st);
        done(st);
      };
      return;
    }
    if (p.kind == Kind::kKey && p.peer == peer) {
      return done(AbortedError("a key request for this peer is under way"));
    }
  }
  auto topic = RandomTopicId();
  if (!topic.ok()) return done(InternalError("CSPRNG failed"));
  uint64_t id = NewKeyRequestId();
  Pending p;
  p.kind = Kind::kKey;
  p.peer = peer;
  p.renewal = renewal || rec->nnsk.valid();
  // Above every version either node may hold for the pair.
  p.version = std::max({rec->key_version,
                        rec->other_nnsk.valid() ? rec->other_version : 0,
                        pairs_[peer].seen_version}) +
              1;
  p.topic3 = *topic;
  p.done = std::move(done);
  Schedule(p, timeout_ms);
  auto [it, inserted] = pending_.emplace(id, std::move(p));
  // Route the new TOPIC3 before anyone can send on it.
  RefreshRoutes(peer, &*rec);
  Status st = Transmit(id, it->second);
  if (!st.ok()) Finish(id, st);
}

void NodeClient::Send(uint32_t peer, SecretBytes data, ReplyCallback done,
                      uint64_t timeout_ms) {
  if (data.size() > kMaxDataSize) {
    return done(InvalidArgumentError("data larger than " +
                                     std::to_string(kMaxDataSize) + " bytes"));
  }
  auto id = RandomU64();
  if (!id.ok()) return done(id.status());
  Pending p;
  p.kind = Kind::kData;
  p.peer = peer;
  p.data = std::move(data);
  p.reply = std::move(done);
  Schedule(p, timeout_ms);
  auto [it, inserted] = pending_.emplace(*id, std::move(p));
  Status st = Transmit(*id, it->second);
  if (!st.ok()) return Finish(*id, st);
}

std::vector<PairInfo> NodeClient::Pairs() const {
  std::vector<PairInfo> out;
  ses_.ForEach([&](const SesKey& k) {
    auto [frames, bytes] = ActualUsage(k);
    out.push_back({k.n_id, k.nnsk.valid() && k.topic4.has_value(),
                   k.key_version, k.ctime_unix_ms, frames, bytes,
                   PolicyFor(k.n_id).limited() ? Used(k) : 0.0});
  });
  return out;
}

// ---- receiving ----

void NodeClient::HandleMessage(const std::string& topic, const Bytes& payload) {
  if (stopped_) return;
  if (topic == topic2_) return HandleFromKs(payload);
  auto it = topic_to_peer_.find(topic);
  if (it != topic_to_peer_.end()) return HandleData(it->second, payload);
  Log("dropped message", nullptr, "unexpected topic");
}

void NodeClient::HandleFromKs(const Bytes& frame) {
  auto peek = PeekFrameHeader(frame);
  if (!peek.ok()) return Log("dropped", nullptr, peek.status().message());
  const FrameHeader& h = *peek;
  if (own_.identity.ks_n_id != 0 && h.sender != own_.identity.ks_n_id) {
    return Log("dropped", &h, "sender is not the key server");
  }
  if (!ks_window_.IsFresh(h.counter)) return Log("dropped", &h, "replayed");
  if (h.type == FrameType::kNkskKeyAns) return OnRegistered(h, frame);
  if (!own_.ks.has_value()) return Log("dropped", &h, "not registered");
  if (h.key_version != own_.ks->version) {
    // During an NKSK rotation the KS sends each frame under the old and the
    // new pair until it sees us use the new one: we open the copy for ours.
    if (h.key_version + 1 == own_.ks->version ||
        h.key_version == own_.ks->version + 1) {
      spdlog::debug("node {}: {} under NKSK version {} skipped (ours is {})",
                    FormatNodeId(n_id()), FrameTypeName(h.type), h.key_version,
                    own_.ks->version);
      return;
    }
    return Log("dropped", &h, "unknown NKSK version");
  }
  FrameHeader opened;
  auto plain = OpenFrame(frame, own_.ks->nksk, &opened);
  if (!plain.ok()) return Log("dropped", &h, plain.status().message());
  ks_window_.Accept(h.counter);
  switch (h.type) {
    case FrameType::kNnskKeyAns: {
      auto m = NnskKeyAns::Parse(plain->span());
      if (!m.ok()) return Log("dropped", &h, m.status().message());
      return OnKeyAns(h, *m);
    }
    case FrameType::kNnskNotReq: {
      auto m = NnskNotReq::Parse(plain->span());
      if (!m.ok()) return Log("dropped", &h, m.status().message());
      return OnNotReq(h, *m);
    }
    case FrameType::kNnskConfReq: {
      auto m = NnskConfReq::Parse(plain->span());
      if (!m.ok()) return Log("dropped", &h, m.status().message());
      return OnConfReq(h, *m);
    }
    case FrameType::kKsError: {
      auto m = KsError::Parse(plain->span());
      if (!m.ok()) return Log("dropped", &h, m.status().message());
      return OnKsError(h, *m);
    }
    case FrameType::kNkskRotAns: {
      auto m = NkskRotAns::Parse(plain->span());
      if (!m.ok()) return Log("dropped", &h, m.status().message());
      return OnRotAns(h, *m);
    }
    case FrameType::kNkskRotSig: {
      spdlog::info("node {}: the key server asks for an NKSK rotation",
                   FormatNodeId(n_id()));
      return RotateNksk([this](Status st) {
        if (!st.ok() && st.code() != StatusCode::kAborted) {
          spdlog::warn("node {}: NKSK rotation failed: {}",
                       FormatNodeId(n_id()), st.ToString());
        }
      });
    }
    case FrameType::kPairRevoked: {
      auto m = PairRevoked::Parse(plain->span());
      if (!m.ok()) return Log("dropped", &h, m.status().message());
      return OnPairRevoked(h, *m);
    }
    default:
      return Log("dropped", &h, "unexpected type from the key server");
  }
}

void NodeClient::OnKeyAns(const FrameHeader& h, const NnskKeyAns& ans) {
  auto it = pending_.find(h.request_id);
  if (it == pending_.end() || it->second.kind != Kind::kKey) {
    return Log("dropped", &h, "no key request under way");
  }
  Pending& p = it->second;
  if (ans.n_id1 != n_id() || ans.n_id2 != p.peer || ans.version != p.version) {
    return Log("dropped", &h, "nnsk_key_ans does not match the request");
  }
  if (p.got_key) {
    // An answer to our retransmission: the KS never issues a second key
    // for one request id.
    if (!p.nnsk.enc.Equals(ans.nnsk.enc) || !p.nnsk.mac.Equals(ans.nnsk.mac)) {
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
  auto it = pending_.find(h.request_id);
  if (it == pending_.end() || it->second.kind != Kind::kKey) {
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
  if (!it->second.got_key || it->second.peer != req.n_id2) {
    return Log("dropped", &h, "confirmation before the key");
  }
  // Step 6: the peer holds the new key (it stored it before answering the
  // KS): we send under it from now on. The key it replaces stays accepted
  // (the peer sends under it until it sees a frame under the new one).
  const Pending& p = it->second;
  SesKey updated = *std::move(rec);
  if (updated.has_previous() && pairs_[req.n_id2].previous_until_ms == 0) {
    // The peer has not used our current key yet: it still sends under the
    // previous one, which stays.
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
  st = SendToKs(h.request_id, h.flags, NnskConfAns{req.n_id2});
  if (!st.ok()) Log("nnsk_conf_ans not sent", &h, st.message());
  if (spdlog::should_log(spdlog::level::info)) {  // per key: skip the text
    spdlog::info("node {}: session key v{} with {} established",
                 FormatNodeId(n_id()), updated.key_version,
                 FormatNodeId(req.n_id2));
  }
  Finish(h.request_id, OkStatus());
}

void NodeClient::OnNotReq(const FrameHeader& h, const NnskNotReq& req) {
  auto rec = ses_.Get(req.n_id1);
  if (!rec.ok()) {
    return Log("dropped", &h, "peer not in this node's peer list");
  }
  // Both sides of a pair asked for a new key at once: the request with the
  // larger request id wins on both nodes; the other is abandoned (its
  // gen_keys record is purged by the KS).
  for (auto& [id, p] : pending_) {
    if (p.kind != Kind::kKey || p.peer != req.n_id1 || id == h.request_id) {
      continue;
    }
    if (id > h.request_id) {
      return Log("dropped", &h, "crossed renewal: our request wins");
    }
    Finish(id, AbortedError("crossed by the peer's own renewal"));
    break;
  }
  // The same key again (the KS retransmits it; we may have restarted
  // since): answer again with the TOPIC we chose then. It is stored, so
  // this holds across our restarts and never makes a second topic.
  auto same = [&](const SymmetricKeys& k, uint32_t version) {
    return k.valid() && version == req.version && k.enc.Equals(req.nnsk.enc) &&
           k.mac.Equals(req.nnsk.mac);
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
  RefreshRoutes(req.n_id1, &updated);
  if (spdlog::should_log(spdlog::level::info)) {
    spdlog::info("node {}: session key v{} with {} received",
                 FormatNodeId(n_id()), req.version, FormatNodeId(req.n_id1));
  }
  st = SendToKs(h.request_id, h.flags, NnskNotAns{req.n_id1, n_id(), *topic});
  if (!st.ok()) Log("nnsk_not_ans not sent", &h, st.message());
}

void NodeClient::OnKsError(const FrameHeader& h, const KsError& err) {
  auto it = pending_.find(h.request_id);
  if (err.code == KsErrorCode::kStaleRequest && it != pending_.end() &&
      it->second.kind == Kind::kKey && it->second.restarts < 8) {
    // The KS has finished this id (a late or reordered request): ask again
    // under a new one at once, within the same deadline.
    Log("asking again under a new request id", &h, KsErrorCodeName(err.code));
    Pending p = std::move(it->second);
    pending_.erase(it);
    p.got_key = false;
    p.nnsk = SymmetricKeys{};
    ++p.restarts;
    uint64_t id = NewKeyRequestId();
    auto [nit, inserted] = pending_.emplace(id, std::move(p));
    Status st = Transmit(id, nit->second);
    if (!st.ok()) Finish(id, st);
    return;
  }
  if (it == pending_.end()) return;  // a late answer to a finished request
  Log("request refused by the key server", &h, KsErrorCodeName(err.code));
  Finish(h.request_id, KsRefusal(err));
}

void NodeClient::RotateNksk(DoneCallback done, uint64_t timeout_ms) {
  if (!registered()) return done(FailedPreconditionError("not registered"));
  for (const auto& [id, p] : pending_) {
    if (p.kind == Kind::kRotate) {
      return done(AbortedError("an NKSK rotation is under way"));
    }
  }
  // Growing like key request ids: the KS refuses a late copy of an older
  // rotation request (docs/protocol.md section 8).
  std::optional<uint64_t> id = NewKeyRequestId();
  auto eph = GenerateX25519();
  if (!eph.ok()) return done(InternalError("key generation"));
  Pending p;
  p.kind = Kind::kRotate;
  p.ephemeral = std::move(*eph);
  p.done = std::move(done);
  Schedule(p, timeout_ms);
  auto [it, inserted] = pending_.emplace(*id, std::move(p));
  Status st = Transmit(*id, it->second);
  if (!st.ok()) Finish(*id, st);
}

void NodeClient::OnRotAns(const FrameHeader& h, const NkskRotAns& m) {
  auto it = pending_.find(h.request_id);
  if (it == pending_.end() || it->second.kind != Kind::kRotate) {
    return Log("dropped", &h, "no NKSK rotation under way");
  }
  if (m.version != own_.ks->version + 1) {
    return Log("dropped", &h, "unexpected NKSK version");
  }
  const X25519KeyPair& eph = it->second.ephemeral;
  auto shared = X25519SharedSecret(eph.private_key, m.ks_public);
  if (!shared.ok()) return Finish(h.request_id, shared.status());
  auto keys =
      RotationKeys(*shared, n_id(), m.version, eph.public_key, m.ks_public);
  if (!keys.ok()) return Finish(h.request_id, keys.status());
  KsKeysBlob blob{std::move(*keys), m.version, own_.ks->ks_topic1,
                  own_.ks->ks_n_id};
  // One NV write per rotation.
  SecretBytes encoded = EncodeKsKeys(blob);
  Status st = tpm_.NvWrite(NvSlot::kKsKeys, encoded.span());
  if (!st.ok()) return Finish(h.request_id, st.Annotate("storing NKSK in NV"));
  own_.ks = std::move(blob);
  PrepareNksk();
  spdlog::info("node {}: NKSK rotated to version {}", FormatNodeId(n_id()),
               m.version);
  Finish(h.request_id, OkStatus());
}

void NodeClient::PrepareNksk() {
  if (!own_.ks.has_value()) return;
  // Only a speed-up: without it every frame sets the key up again.
  Status st = own_.ks->nksk.Prepare();
  if (!st.ok()) spdlog::warn("node: NKSK not prepared: {}", st.ToString());
}

void NodeClient::OnPairRevoked(const FrameHeader& h, const PairRevoked& m) {
  // Wipe everything of the pair: its keys (ses_keys entry, previous key),
  // its topics and its pending requests. Data from the peer is then dropped.
  Status st = ses_.Delete(m.peer);
  if (!st.ok()) return Log("pair not wiped", &h, st.message());
  auto it = pairs_.find(m.peer);
  if (it != pairs_.end()) {
    for (const std::string& t : it->second.routes) topic_to_peer_.erase(t);
    pairs_.erase(it);
  }
  std::erase_if(topic_to_peer_,
                [&](const auto& e) { return e.second == m.peer; });
  std::vector<uint64_t> ids;
  for (const auto& [id, p] : pending_) {
    if (p.peer == m.peer) ids.push_back(id);
  }
  for (uint64_t id : ids) Finish(id, PermissionDeniedError("pair revoked"));
  spdlog::warn(
      "node {}: pair with {} revoked by the key server ({}); its "
      "keys are wiped",
      FormatNodeId(n_id()), FormatNodeId(m.peer),
      m.reason == RevokeReason::kPeerRevoked ? "peer revoked"
                                             : "pair withdrawn");
}

void NodeClient::HandleData(uint32_t peer, const Bytes& frame) {
  auto peek = PeekFrameHeader(frame);
  if (!peek.ok()) return Log("dropped data", nullptr, peek.status().message());
  const FrameHeader& h = *peek;
  if (h.sender != peer) return Log("dropped", &h, "sender is not the peer");
  if (h.type != FrameType::kNodeDataReq && h.type != FrameType::kNodeDataAns) {
    return Log("dropped", &h, "not a data frame");
  }
  auto rec = ses_.Get(peer);
  if (!rec.ok()) return Log("dropped", &h, "unknown pair");
  PairState& ps = pairs_[peer];
  // The current key, the next one (the peer completed a renewal) or the
  // previous one (until its grace period ends).
  const SymmetricKeys* keys = nullptr;
  if (rec->nnsk.valid() && h.key_version == rec->key_version) {
    // Before step 6 a write of the entry resets its receive floor: nothing
    // is accepted under a key we have not confirmed (the peer sends again).
    if (!rec->topic4.has_value()) {
      return Log("dropped", &h, "key not confirmed yet");
    }
    keys = &rec->nnsk;
  } else if (rec->other_nnsk.valid() && h.key_version == rec->other_version &&
             (rec->has_next() || ps.previous_until_ms == 0 ||
              clock_.NowUnixMillis() < ps.previous_until_ms)) {
    keys = &rec->other_nnsk;
  }
  if (keys == nullptr) {
    // A newer key we do not hold (an older one is a late frame). The header
    // is not authenticated: it is only a hint for the version of our next
    // renewal, never a reason to start one (anyone who can publish on the
    // topic could force renewals). Unanswered data starts one (Tick).
    if (h.key_version > rec->key_version &&
        h.key_version - rec->key_version < 1024) {
      ps.seen_version = std::max(ps.seen_version, h.key_version);
    }
    return Log("dropped", &h, "no key of that version");
  }
  auto wit = ps.windows.find(h.key_version);
  if (wit == ps.windows.end()) {
    // First frame under this version since we started: continue from the
    // persisted counter (a restart must not reopen the window).
    uint64_t floor = h.key_version == rec->key_version ? rec->rx_counter
                     : keys == &rec->other_nnsk       ? rec->other_rx_counter
                                                      : 0;
    wit = ps.windows.emplace(h.key_version, ReplayWindow(floor)).first;
  }
  ReplayWindow& window = wit->second;
  if (!window.IsFresh(h.counter)) return Log("dropped", &h, "replayed");
  FrameHeader opened;
  auto plain = OpenFrame(frame, *keys, &opened);
  if (!plain.ok()) return Log("dropped", &h, plain.status().message());
  if (keys == &rec->nnsk && h.counter > rec->rx_counter) {
    Status st = ReserveRx(rec->Clone(), h.counter);
    if (!st.ok()) return Log("dropped", &h, st.message());
  } else if (keys == &rec->other_nnsk && rec->has_previous() &&
             h.counter > rec->other_rx_counter) {
    // The peer still sends under the previous key (a renewal in progress):
    // its floor is raised the same way, so a restart never reopens it.
    SesKey raised = rec->Clone();
    raised.other_rx_counter = h.counter + kRxReserveMicros;
    Status st = ses_.Put(raised);
    if (!st.ok()) return Log("dropped", &h, st.message());
    rec->other_rx_counter = raised.other_rx_counter;
  }
  window.Accept(h.counter);
  ps.converge_backoff_ms = 0;
  if (keys == &rec->other_nnsk && rec->has_next()) {
    auto promoted = Promote(*rec, h.counter);
    if (!promoted.ok()) {
      return Log("dropped", &h, promoted.status().message());
    }
    rec = std::move(promoted);
  } else if (keys == &rec->nnsk && rec->has_previous() &&
             ps.previous_until_ms == 0) {
    // The peer uses the current key: the previous one has its grace now.
    ps.previous_until_ms =
        clock_.NowUnixMillis() + options_.previous_key_grace_ms;
  }
  if (h.type == FrameType::kNodeDataAns) {
    auto ans = NodeDataAns::Parse(plain->span());
    if (!ans.ok()) return Log("dropped", &h, ans.status().message());
    auto it = pending_.find(h.request_id);
    if (it == pending_.end() || it->second.kind != Kind::kData ||
        it->second.peer != peer) {
      return;  // a late duplicate answer
    }
    Pending p = std::move(it->second);
    pending_.erase(it);
    if (p.reply) p.reply(std::move(ans->data));
    return;
  }
  auto req = NodeDataReq::Parse(plain->span());
  if (!req.ok()) return Log("dropped", &h, req.status().message());
  if (req->n_id2 != n_id()) return Log("dropped", &h, "not addressed to us");
  SecretBytes reply = handler_ ? handler_(peer, req->data) : SecretBytes();
  ReplyData(peer, *rec, h, std::move(reply));
}

// ---- init (4.4) ----

StatusOr<OwnData> InitNode(Tpm& tpm, const Credentials& c) {
  if (c.ntag.size() != kNtagSize) return InvalidArgumentError("NTAG size");
  if (c.n_id == 0) return InvalidArgumentError("N_ID 0 is reserved");
  KGR_RETURN_IF_ERROR(ValidateTopicPrefix(c.topic_prefix));
  KGR_RETURN_IF_ERROR(tpm.EnsureTrustStructure(/*with_kedk=*/false));
  auto existing = LoadOwnData(tpm);
  if (existing.ok()) {
    if (existing->identity.role != Role::kNode ||
        existing->identity.n_id != c.n_id) {
      return FailedPreconditionError("this TPM already holds the identity of " +
                                     FormatNodeId(existing->identity.n_id));
    }
    return existing;
  }
  if (existing.status().code() != StatusCode::kNotFound) {
    return existing.status();
  }
  KGR_RETURN_IF_ERROR(MixTpmEntropy(tpm));
  OwnData d;
  d.identity.role = Role::kNode;
  d.identity.n_id = c.n_id;
  d.identity.broker_address = c.broker_address;
  d.identity.topic_prefix = c.topic_prefix;
  d.identity.ks_n_id = c.ks_n_id;
  KGR_ASSIGN_OR_RETURN(d.identity.own_topic, RandomTopicId());
  KGR_ASSIGN_OR_RETURN(d.nk, SymmetricKeys::Generate());
  d.ntag = c.ntag.Clone();
  KGR_RETURN_IF_ERROR(SaveInitialOwnData(tpm, d));
  spdlog::info("node {}: initialized", FormatNodeId(c.n_id));
  return d;
}

}  // namespace kgr
