#include "kgr/node_client.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "node/send_to_ks.h"

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
    case KsErrorCode::kCertificateRefused:
      return PermissionDeniedError(why);
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
  if (what.starts_with("dropped")) ++stats_.frames_dropped;
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
  KGR_RETURN_IF_ERROR(LoadGroups());
  spdlog::info("node {}: ready ({}registered, {} peers)", FormatNodeId(n_id()),
               registered() ? "" : "not ", ses_.size());
  return OkStatus();
}

// ---- sending to the KS ----

Status NodeClient::Transmit(uint64_t request_id, Pending& p) {
  ++p.attempts;
  if (const auto* k = std::get_if<KeyRequest>(&p.request)) {
    return SendToKs(request_id, k->renewal ? kFlagRenewal : 0,
                    NnskKeyReq{k->peer, k->version, k->topic3});
  }
  if (const auto* r = std::get_if<RotationRequest>(&p.request)) {
    return SendToKs(request_id, 0, NkskRotReq{r->ephemeral.public_key});
  }
  if (const auto* c = std::get_if<CertRequest>(&p.request)) {
    return SendToKs(request_id, 0, CertRenewReq{c->csr_der});
  }
  const DataRequest& d = std::get<DataRequest>(p.request);
  auto rec = ses_.Get(d.peer);
  if (!rec.ok() || !rec->nnsk.valid() || !rec->topic4.has_value()) {
    return FailedPreconditionError("no session key with peer " +
                                   FormatNodeId(d.peer));
  }
  if (PolicyFor(d.peer).limited() && Used(*rec) >= 1.0) {
    return ResourceExhaustedError(
        "the key with peer " + FormatNodeId(d.peer) +
        " reached its policy limit; a renewal is needed");
  }
  FrameHeader h;
  h.sender = n_id();
  h.key_version = rec->key_version;
  h.counter = counter_.Next(clock_.NowUnixMicros());
  h.request_id = request_id;
  KGR_ASSIGN_OR_RETURN(
      Bytes frame, SealBody(h, NodeDataReq{d.peer, d.data.Clone()}, rec->nnsk));
  KGR_RETURN_IF_ERROR(CountUse(d.peer, d.data.size()));
  return transport_.Publish(PeerTopic(d.peer, *rec->topic4), frame);
}

std::optional<uint32_t> NodeClient::PeerOf(const Pending& p) {
  if (const auto* k = std::get_if<KeyRequest>(&p.request)) return k->peer;
  if (const auto* d = std::get_if<DataRequest>(&p.request)) return d->peer;
  return std::nullopt;
}

NodeClient::KeyRequest* NodeClient::KeyRequestFor(uint32_t peer) {
  for (auto& [id, p] : pending_) {
    auto* k = std::get_if<KeyRequest>(&p.request);
    if (k != nullptr && k->peer == peer) return k;
  }
  return nullptr;
}

void NodeClient::Finish(uint64_t request_id, Status status) {
  auto it = pending_.find(request_id);
  if (it == pending_.end()) return;
  Pending p = std::move(it->second);
  pending_.erase(it);
  if (auto* k = std::get_if<KeyRequest>(&p.request)) {
    if (!status.ok()) ++stats_.key_request_failures;
    auto rec = ses_.Get(k->peer);
    RefreshRoutes(k->peer, rec.ok() ? &*rec : nullptr);
    if (k->done) k->done(status);
  } else if (auto* d = std::get_if<DataRequest>(&p.request)) {
    if (d->reply) d->reply(status);
  } else if (auto* r = std::get_if<RotationRequest>(&p.request)) {
    if (r->done) r->done(status);
  } else if (auto* c = std::get_if<CertRequest>(&p.request)) {
    // Success comes through OnCertAns with the chain.
    if (c->done)
      c->done(status.ok() ? InternalError("no certificate") : status);
  }
}

void NodeClient::Tick() {
  uint64_t now = clock_.NowMonotonicMillis();
  TickRegistration(now);
  RenewByPolicy();
  if (groups_store_ != nullptr) {
    ExpireGroupKeys();
    TickGroupSync(now);
  }
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
    const auto* data = std::get_if<DataRequest>(&p.request);
    const auto* key = std::get_if<KeyRequest>(&p.request);
    if (data != nullptr) Converge(data->peer, "a data request went unanswered");
    std::string who = data != nullptr ? "peer " + FormatNodeId(data->peer)
                      : key != nullptr && key->got_key
                          ? "peer " + FormatNodeId(key->peer) +
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
  auto git = topic_to_group_.find(topic);
  if (git != topic_to_group_.end()) {
    return HandleGroupData(git->second, payload);
  }
  auto rit = rekey_topic_to_group_.find(topic);
  if (rit != rekey_topic_to_group_.end()) {
    return HandleGroupRekey(rit->second, payload);
  }
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
    case FrameType::kCertRenewAns: {
      auto m = CertRenewAns::Parse(plain->span());
      if (!m.ok()) return Log("dropped", &h, m.status().message());
      return OnCertAns(h, std::move(*m));
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
    case FrameType::kGroupJoin:
    case FrameType::kGroupSyncAns:
      return OnGroupPathFrame(h, plain->span());
    default:
      return Log("dropped", &h, "unexpected type from the key server");
  }
}

void NodeClient::OnKsError(const FrameHeader& h, const KsError& err) {
  auto it = pending_.find(h.request_id);
  KeyRequest* key = Find<KeyRequest>(h.request_id);
  if (err.code == KsErrorCode::kStaleRequest && key != nullptr &&
      key->restarts < 8) {
    // The KS has finished this id (a late or reordered request): ask again
    // under a new one at once, within the same deadline.
    Log("asking again under a new request id", &h, KsErrorCodeName(err.code));
    key->got_key = false;
    key->nnsk = SymmetricKeys{};
    ++key->restarts;
    Pending p = std::move(it->second);
    pending_.erase(it);
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

}  // namespace kgr
