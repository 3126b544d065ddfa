#include "kgr/key_server.h"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace kgr {
namespace {

constexpr uint32_t kAcSender = 0;  // the AC has no N_ID

bool Contains(const std::vector<uint32_t>& v, uint32_t x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

// What gen_keys keeps of a key after step 7 or its purge: that its request
// id was served (no key, no topics).
GenKey Tombstone(const GenKey& g) {
  GenKey t;
  t.n_id1 = g.n_id1;
  t.request_id = g.request_id;
  t.ctime_unix_ms = g.ctime_unix_ms;
  t.step = kGenKeyTombstone;
  t.renewal = g.renewal;
  t.version = g.version;
  t.n_id2 = g.n_id2;
  return t;
}

}  // namespace

KeyServer::KeyServer(OwnData own, Bytes kedk_public, Transport& transport,
                     NodeDescStore& nodes, GenKeysStore& gen_keys,
                     const CmsEndpoint* cms, Clock& clock,
                     KeyServerOptions options)
    : own_(std::move(own)),
      kedk_public_(std::move(kedk_public)),
      transport_(transport),
      nodes_(nodes),
      gen_keys_(gen_keys),
      cms_(cms),
      clock_(clock),
      options_(options),
      counter_(options.counter_floor),
      node_limiter_(options.node_frames_per_s, options.node_burst),
      registration_limiter_(options.node_frames_per_s, options.node_burst),
      registrations_limiter_(options.registrations_per_s,
                             options.registrations_burst),
      ac_limiter_(options.ac_messages_per_s, options.ac_burst),
      register_topic_(RegisterTopic(own_.identity.topic_prefix)),
      topic1_(TopicName(own_.identity.topic_prefix, kKsIdentity,
                        own_.identity.own_topic)),
      ac_topic_(AcRequestTopic(own_.identity.topic_prefix)) {}

Status KeyServer::Start() {
  const std::string& prefix = own_.identity.topic_prefix;
  KGR_RETURN_IF_ERROR(transport_.Subscribe(RegisterTopic(prefix)));
  KGR_RETURN_IF_ERROR(transport_.Subscribe(topic1()));
  if (cms_ != nullptr) {
    KGR_RETURN_IF_ERROR(transport_.Subscribe(AcRequestTopic(prefix)));
  }
  spdlog::info("ks {}: serving; {} nodes, {} pending keys",
               FormatNodeId(own_.identity.n_id), nodes_.size(),
               gen_keys_.size());
  return OkStatus();
}

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

void KeyServer::HandleMessage(const std::string& topic, const Bytes& payload) {
  Dispatch(topic, payload);
  CommitStaged();
}

void KeyServer::HandleMessages(std::span<const Message> messages) {
  for (const Message& m : messages) Dispatch(m.topic, m.payload);
  CommitStaged();
}

void KeyServer::CommitStaged() {
  if (staged_.empty()) return;
  // Step 2: the records are durable before any of their keys leaves the KS.
  GenKeysStore::Batch batch = gen_keys_.NewBatch();
  Status st;
  for (const Staged& s : staged_) {
    st = batch.Put(s.key);
    if (!st.ok()) break;
  }
  if (st.ok()) st = gen_keys_.Apply(std::move(batch));
  for (Staged& s : staged_) {
    if (!st.ok()) {
      spdlog::error("ks: gen_keys not stored: {}", st.ToString());
      SendError(s.request, *s.n1, KsErrorCode::kInternal);
      continue;
    }
    // Its durable record answers this id from now on; the floor (persisted
    // by FlushCounters) takes over once the record is gone.
    uint64_t& floor = request_floors_[s.key.n_id1];
    if (s.key.request_id > floor) {
      floor = s.key.request_id;
      dirty_counters_.push_back(s.key.n_id1);
    }
    ++stats_.keys_issued;
    if (spdlog::should_log(spdlog::level::debug)) {  // per key
      spdlog::debug("ks: {} key {:016x} for {} -> {} (version {})",
                    s.key.renewal ? "renewed" : "new", s.key.request_id,
                    FormatNodeId(s.key.n_id1), FormatNodeId(s.key.n_id2),
                    s.key.version);
    }
    Status sent = SendKeyAndNotification(s.key, *s.n1, *s.n2);
    if (!sent.ok())
      spdlog::warn("ks: key delivery failed: {}", sent.ToString());
  }
  staged_.clear();
}

void KeyServer::Dispatch(const std::string& topic, const Bytes& payload) {
  if (topic == register_topic_ || topic == topic1_) {
    if (payload.size() > kMaxFrameToKs) return Drop(nullptr, "oversized frame");
    if (topic == topic1_) return HandleTopic1(payload);
    HandleRegistration(payload);
  } else if (topic == ac_topic_) {
    if (!ac_limiter_.Allow(0, clock_.NowMonotonicMillis())) {
      ++stats_.rate_limited;
      return Drop(nullptr, "AC channel rate limit");
    }
    HandleAc(payload);
  } else {
    Drop(nullptr, "unexpected topic");
  }
}

template <typename Body>
Status KeyServer::SendToNode(const NodeDesc& node, uint64_t request_id,
                             uint8_t flags, const Body& body) {
  if (!node.topic2.has_value()) {
    return FailedPreconditionError("node has no TOPIC2");
  }
  // During an NKSK rotation, until the node has used the new pair, we
  // cannot know which pair it holds: its answer may be lost, it may have
  // given up the rotation, or restarted with only the new pair in NV. Each
  // frame goes under both; the header's key version tells the node which
  // copy it can open (it drops the other unopened).
  const std::string topic = TopicName(own_.identity.topic_prefix,
                                      NodeIdentity(node.n_id), *node.topic2);
  FrameHeader h;
  h.flags = flags;
  h.sender = own_.identity.n_id;
  h.request_id = request_id;
  if (node.prev_nksk.valid()) {
    h.key_version = node.nksk_version - 1;
    h.counter = counter_.Next(clock_.NowUnixMicros());
    KGR_ASSIGN_OR_RETURN(Bytes old, SealBody(h, body, node.prev_nksk));
    KGR_RETURN_IF_ERROR(transport_.Publish(topic, old));
  }
  h.key_version = node.nksk_version;
  h.counter = counter_.Next(clock_.NowUnixMicros());
  KGR_ASSIGN_OR_RETURN(Bytes frame, SealBody(h, body, node.nksk));
  return transport_.Publish(topic, frame);
}

// ---- node_desc cache ----

StatusOr<KeyServer::NodeRef> KeyServer::FindNode(uint32_t n_id) {
  auto it = node_cache_.find(n_id);
  if (it != node_cache_.end()) return it->second;
  KGR_ASSIGN_OR_RETURN(NodeDesc d, nodes_.Get(n_id));
  CacheNode(d);
  it = node_cache_.find(n_id);
  if (it != node_cache_.end()) return it->second;
  return std::make_shared<const NodeDesc>(std::move(d));  // no cache
}

StatusOr<NodeDesc> KeyServer::GetNode(uint32_t n_id) {
  KGR_ASSIGN_OR_RETURN(NodeRef node, FindNode(n_id));
  return node->Clone();
}

void KeyServer::CacheNode(const NodeDesc& d) {
  if (options_.node_cache_entries == 0) return;
  NodeDesc entry = d.Clone();
  // Clones of the entry (one per frame) share the prepared key setup.
  for (SymmetricKeys* k : {&entry.nksk, &entry.prev_nksk}) {
    if (k->valid() && !k->prepared) (void)k->Prepare();
  }
  auto shared = std::make_shared<const NodeDesc>(std::move(entry));
  auto it = node_cache_.find(d.n_id);
  if (it != node_cache_.end()) {
    it->second = std::move(shared);
    return;
  }
  // Full: evict an arbitrary entry (its secrets are wiped on destruction,
  // when the last frame using it is done).
  if (node_cache_.size() >= options_.node_cache_entries) {
    node_cache_.erase(node_cache_.begin());
  }
  node_cache_.emplace(d.n_id, std::move(shared));
}

Status KeyServer::PutNode(const NodeDesc& d) {
  Status st = nodes_.Put(d);
  AfterNodeWrite(d, st);
  return st;
}

Status KeyServer::PutNodes(const std::vector<NodeDesc>& batch) {
  Status st = nodes_.PutAll(batch);
  for (const NodeDesc& d : batch) AfterNodeWrite(d, st);
  return st;
}

void KeyServer::AfterNodeWrite(const NodeDesc& d, const Status& written) {
  if (written.ok()) {
    CacheNode(d);
  } else {
    node_cache_.erase(d.n_id);  // the store decides what is true
  }
}

// ---- registration (4.5) ----

void KeyServer::HandleRegistration(const Bytes& frame) {
  auto peek = PeekFrameHeader(frame);
  if (!peek.ok()) return Drop(nullptr, peek.status().message());
  const FrameHeader& h = *peek;
  if (h.type != FrameType::kNkskKeyReq) return Drop(&h, "not nksk_key_req");
  if (!Admit(h)) return;
  auto node = GetNode(h.sender);
  if (!node.ok()) return Drop(&h, "unknown N_ID");
  if (node->state == NodeState::kRevoked) return Drop(&h, "node revoked");
  // A repetition of the registration that succeeded (the answer was lost,
  // or the node died before storing its keys): answered with the same keys
  // as long as the node has not used them (then it holds them). Any other
  // request after registration is refused.
  bool repeat = node->state == NodeState::kRegistered &&
                h.request_id == RegistrationRequestId(node->ntag) &&
                node->nksk_unused && !Contains(dirty_counters_, node->n_id);
  if (node->state == NodeState::kRegistered && !repeat) {
    return Drop(&h, "NTAG already used (node registered)");
  }
  ReplayWindow& window = WindowFor(*node);
  if (!window.IsFresh(h.counter)) return Drop(&h, "replayed counter");
  auto keys = RegistrationKeys(node->ntag, node->n_id, FrameType::kNkskKeyReq);
  if (!keys.ok()) return Drop(&h, keys.status().message());
  FrameHeader opened;
  auto req = OpenBody<NkskKeyReq>(frame, *keys, &opened);
  if (!req.ok()) return Drop(&h, req.status().message());
  if (req->n_id != node->n_id || !req->ntag.Equals(node->ntag)) {
    return Drop(&h, "NTAG does not match");
  }
  // Charged only now: frames carrying this N_ID that do not prove its NTAG
  // cost the node nothing, and TOPIC1 traffic has its own budget.
  if (!Charge(h, registration_limiter_, &registrations_limiter_)) return;
  window.Accept(h.counter);
  if (repeat) {
    if (node->topic2 != req->topic2) return Drop(&h, "TOPIC2 changed");
    spdlog::info("ks: node {} asked again for its registration: same keys",
                 FormatNodeId(h.sender));
    return SendRegistrationAnswer(*node, h.request_id);
  }

  auto nksk = SymmetricKeys::Generate();
  if (!nksk.ok()) return Drop(&h, nksk.status().message());
  NodeDesc updated = node->Clone();
  updated.state = NodeState::kRegistered;
  updated.nksk = std::move(*nksk);
  updated.nksk_version = 1;
  updated.topic2 = req->topic2;
  updated.last_counter = window.highest();
  updated.registered_unix_ms = clock_.NowUnixMillis();
  updated.nksk_unused = true;
  // Step 2: node_desc is durable before the keys leave the KS.
  Status st = PutNode(updated);
  if (!st.ok()) {
    spdlog::error("ks: registration of {} not stored: {}",
                  FormatNodeId(h.sender), st.ToString());
    return;
  }
  ++stats_.registrations;
  spdlog::info("ks: node {} registered", FormatNodeId(h.sender));
  SendRegistrationAnswer(updated, h.request_id);
}

void KeyServer::SendRegistrationAnswer(const NodeDesc& node,
                                       uint64_t request_id) {
  auto ans_keys =
      RegistrationKeys(node.ntag, node.n_id, FrameType::kNkskKeyAns);
  if (!ans_keys.ok() || !node.topic2.has_value()) return;
  FrameHeader out;
  out.sender = own_.identity.n_id;
  out.counter = counter_.Next(clock_.NowUnixMicros());
  out.request_id = request_id;
  NkskKeyAns ans{node.nksk.Clone(), own_.identity.own_topic};
  auto sealed = SealBody(out, ans, *ans_keys);
  if (!sealed.ok()) return;
  Status st =
      transport_.Publish(TopicName(own_.identity.topic_prefix,
                                   NodeIdentity(node.n_id), *node.topic2),
                         *sealed);
  if (!st.ok()) spdlog::warn("ks: nksk_key_ans not sent: {}", st.ToString());
}

// ---- session keys (4.7, 4.9) ----

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

void KeyServer::HandleRotation(const FrameHeader& h, const NodeDesc& node,
                               bool under_prev, const NkskRotReq& req) {
  // A retransmitted request (the node has not got our answer, or our answer
  // crossed its retransmission) comes under the previous NKSK with the same
  // id and key: the same answer again, since the node may already hold the
  // pair it gives. A new request under the previous NKSK (the node gave up
  // the last one) agrees again, replacing the unconfirmed new pair.
  auto same = rotations_.find(node.n_id);
  if (under_prev && same != rotations_.end() &&
      same->second.request_id == h.request_id &&
      same->second.node_public == req.node_public &&
      same->second.version == node.nksk_version) {
    Status st =
        SendToNode(node, h.request_id, 0,
                   NkskRotAns{same->second.ks_public, node.nksk_version});
    if (!st.ok()) spdlog::warn("ks: nksk_rot_ans not sent: {}", st.ToString());
    return;
  }
  // Rotation ids grow per node like key request ids and share their floor:
  // an id at or below it is a late copy of an older (abandoned) request,
  // which must never replace the pair a later answer gave the node.
  uint64_t& floor = request_floors_[node.n_id];
  floor = std::max(floor, node.request_floor);
  if (h.request_id <= floor) return Drop(&h, "stale rotation request");
  auto ks_key = GenerateX25519();
  if (!ks_key.ok()) return;
  auto shared = X25519SharedSecret(ks_key->private_key, req.node_public);
  if (!shared.ok()) return Drop(&h, shared.status().message());
  uint32_t version = under_prev ? node.nksk_version : node.nksk_version + 1;
  auto keys = RotationKeys(*shared, node.n_id, version, req.node_public,
                           ks_key->public_key);
  if (!keys.ok()) return;
  NodeDesc updated = node.Clone();
  updated.prev_nksk = under_prev ? node.prev_nksk.Clone() : node.nksk.Clone();
  updated.nksk = std::move(*keys);
  updated.nksk_version = version;
  updated.request_floor = h.request_id;
  Status st = PutNode(updated);  // durable before the answer
  if (!st.ok()) {
    spdlog::error("ks: NKSK rotation not stored: {}", st.ToString());
    return;
  }
  floor = h.request_id;
  spdlog::info("ks: node {} rotates its NKSK to version {}",
               FormatNodeId(node.n_id), version);
  rotations_[node.n_id] = {h.request_id, req.node_public, ks_key->public_key,
                           version};
  st = SendToNode(updated, h.request_id, 0,
                  NkskRotAns{ks_key->public_key, version});
  if (!st.ok()) spdlog::warn("ks: nksk_rot_ans not sent: {}", st.ToString());
}

Status KeyServer::RequestRotation(uint32_t n_id) {
  auto node = GetNode(n_id);
  if (!node.ok()) return NotFoundError("unknown node");
  if (node->state != NodeState::kRegistered) {
    return FailedPreconditionError("node not registered");
  }
  return SendToNode(*node, 0, 0, NkskRotSig{});
}

void KeyServer::SendError(const FrameHeader& h, const NodeDesc& n,
                          KsErrorCode code) {
  ++stats_.refused_requests;
  spdlog::warn("ks: refused {} from {} (request {:016x}): {}",
               FrameTypeName(h.type), FormatNodeId(h.sender), h.request_id,
               KsErrorCodeName(code));
  Status st = SendToNode(n, h.request_id, h.flags, KsError{h.type, code});
  if (!st.ok()) spdlog::warn("ks: ks_error not sent: {}", st.ToString());
}

Status KeyServer::SendKeyAndNotification(const GenKey& g, const NodeDesc& n1,
                                         const NodeDesc& n2) {
  uint8_t flags = g.renewal ? kFlagRenewal : 0;
  KGR_RETURN_IF_ERROR(
      SendToNode(n1, g.request_id, flags,
                 NnskKeyAns{g.n_id1, g.n_id2, g.version, g.nnsk.Clone()}));
  return SendToNode(n2, g.request_id, flags,
                    NnskNotReq{g.n_id1, g.version, g.nnsk.Clone(),
                               g.topic3.value_or(TopicId{})});
}

void KeyServer::HandleKeyReq(const FrameHeader& h, const NodeRef& n1,
                             const NnskKeyReq& req) {
  // One request id, at most one key, ever: a retransmitted request gets the
  // same key again while its record lives; once the key was confirmed or
  // purged (tombstone), or its record dropped under the node's floor, the
  // id is refused as stale and the node asks again under a new one (also
  // when another node's request holds the id).
  auto existing = gen_keys_.Get(h.request_id);
  if (existing.ok()) {
    if (existing->n_id1 != n1->n_id || existing->tombstone()) {
      return SendError(h, *n1, KsErrorCode::kStaleRequest);
    }
    auto n2 = FindNode(existing->n_id2);
    if (!n2.ok()) return;
    if (existing->step == 2) {
      Status st = SendKeyAndNotification(*existing, *n1, **n2);
      if (!st.ok()) spdlog::warn("ks: resend failed: {}", st.ToString());
    } else {
      Status st =
          SendToNode(*n1, h.request_id, h.flags,
                     NnskKeyAns{existing->n_id1, existing->n_id2,
                                existing->version, existing->nnsk.Clone()});
      if (st.ok()) st = SendConfReq(*existing, *n1);
      if (!st.ok()) spdlog::warn("ks: resend failed: {}", st.ToString());
    }
    return;
  }
  for (const Staged& s : staged_) {
    if (s.key.request_id == h.request_id) return;  // answered at commit
  }
  auto floor = request_floors_.find(n1->n_id);
  if (h.request_id <= n1->request_floor ||
      (floor != request_floors_.end() && h.request_id <= floor->second)) {
    return SendError(h, *n1, KsErrorCode::kStaleRequest);
  }
  if (req.n_id2 == n1->n_id || !Contains(n1->allowed_peers, req.n_id2)) {
    return SendError(h, *n1, KsErrorCode::kPairNotAllowed);
  }
  auto n2 = FindNode(req.n_id2);
  if (!n2.ok() || (*n2)->state != NodeState::kRegistered) {
    return SendError(h, *n1, KsErrorCode::kPeerUnknown);
  }
  if (!Contains((*n2)->allowed_peers, n1->n_id)) {
    return SendError(h, *n1, KsErrorCode::kPairNotAllowed);
  }
  if (gen_keys_.size() + staged_.size() >= options_.max_pending) {
    return SendError(h, *n1, KsErrorCode::kBusy);
  }
  auto nnsk = SymmetricKeys::Generate();
  if (!nnsk.ok()) return SendError(h, *n1, KsErrorCode::kInternal);
  GenKey g;
  g.n_id1 = n1->n_id;
  g.request_id = h.request_id;
  g.ctime_unix_ms = clock_.NowUnixMillis();
  g.step = 2;
  g.renewal = (h.flags & kFlagRenewal) != 0;
  g.version = req.version;
  g.n_id2 = req.n_id2;
  g.nnsk = std::move(*nnsk);
  g.topic3 = req.topic3;
  // Staged: written with the other new keys of this batch (CommitStaged).
  staged_.push_back({std::move(g), n1, *std::move(n2), h});
}

Status KeyServer::SendConfReq(const GenKey& g, const NodeDesc& n1) {
  if (!g.topic4.has_value()) return FailedPreconditionError("no TOPIC4");
  return SendToNode(n1, g.request_id, g.renewal ? kFlagRenewal : 0,
                    NnskConfReq{g.n_id1, g.n_id2, *g.topic4});
}

void KeyServer::HandleNotAns(const FrameHeader& h, const NodeDesc& n2,
                             const NnskNotAns& ans) {
  auto g = gen_keys_.Get(h.request_id);
  if (!g.ok() || g->tombstone()) {
    return Drop(&h, "no pending key for this request");
  }
  if (g->n_id2 != n2.n_id || ans.n_id2 != n2.n_id || ans.n_id1 != g->n_id1) {
    return Drop(&h, "nnsk_not_ans does not match the pending key");
  }
  auto n1 = FindNode(g->n_id1);
  if (!n1.ok()) return Drop(&h, "requester vanished");
  if (g->step == 2) {
    GenKey updated = g->Clone();
    updated.step = 5;
    updated.topic4 = ans.topic4;
    // Step 5: gen_keys updated before the confirmation goes out. Not synced:
    // if a crash loses it, the record is back at step 2 and the requester's
    // retransmission makes the KS resend its notification, which the peer
    // answers again with the same TOPIC4.
    gen_keys_.PutUnsynced(updated);
    Status st = SendConfReq(updated, **n1);
    if (!st.ok()) spdlog::warn("ks: nnsk_conf_req not sent: {}", st.ToString());
    return;
  }
  // Duplicate not_ans: confirm again (idempotent).
  Status st = SendConfReq(*g, **n1);
  if (!st.ok()) spdlog::warn("ks: nnsk_conf_req not sent: {}", st.ToString());
}

void KeyServer::HandleConfAns(const FrameHeader& h, const NodeDesc& n1,
                              const NnskConfAns& ans) {
  auto g = gen_keys_.Get(h.request_id);
  // Already confirmed: duplicates are harmless.
  if (!g.ok() || g->tombstone()) return;
  if (g->n_id1 != n1.n_id || ans.n_id2 != g->n_id2 || g->step != 5) {
    return Drop(&h, "nnsk_conf_ans does not match the pending key");
  }
  // Step 7: the KS forgets the key but not the request id (a tombstone,
  // dropped by Tick once the node's persisted floor covers it). Not
  // synced: if a crash loses it, the record is back at step 5 (or 2) with
  // the same key, which a late retransmission gets again; the TTL purge
  // turns it into a tombstone later.
  gen_keys_.PutUnsynced(Tombstone(*g));
  ++stats_.keys_confirmed;
  if (spdlog::should_log(spdlog::level::debug)) {
    spdlog::debug("ks: key {:016x} for {} -> {} confirmed and forgotten",
                  h.request_id, FormatNodeId(g->n_id1), FormatNodeId(g->n_id2));
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

void KeyServer::Tick() {
  Status st = FlushCounters();
  if (!st.ok()) {
    spdlog::error("ks: replay counters not persisted: {}", st.ToString());
  }
  PurgeGenKeys();
}

void KeyServer::PurgeGenKeys() {
  uint64_t now = clock_.NowUnixMillis();
  std::vector<GenKey> expired;
  std::vector<uint64_t> covered;
  gen_keys_.ForEach([&](const GenKey& g) {
    if (g.tombstone()) {
      // Only a floor that is durable may replace the tombstone.
      auto n1 = FindNode(g.n_id1);
      if (!n1.ok() || g.request_id <= (*n1)->request_floor) {
        covered.push_back(g.request_id);
      }
    } else if (now > g.ctime_unix_ms + options_.gen_key_ttl_ms) {
      expired.push_back(Tombstone(g));
    }
  });
  for (uint64_t id : covered) gen_keys_.DeleteUnsynced(id);
  for (const GenKey& t : expired) {
    // Unsynced: a purge lost by a crash is made again.
    gen_keys_.PutUnsynced(t);
    ++stats_.keys_purged;
    spdlog::warn("ks: purged unconfirmed key {:016x} (older than {} ms)",
                 t.request_id, options_.gen_key_ttl_ms);
  }
}

// ---- AC requests (4.3, 4.6) ----

Status KeyServer::AuthorizeNode(const AcAuthorizeReq& req,
                                AcAuthorizeAns* ans) {
  uint32_t n_id = 0;
  for (int attempt = 0; attempt < 16 && n_id == 0; ++attempt) {
    KGR_ASSIGN_OR_RETURN(uint32_t candidate, RandomU32());
    if (candidate != 0 && candidate != own_.identity.n_id &&
        !GetNode(candidate).ok()) {
      n_id = candidate;
    }
  }
  if (n_id == 0) return InternalError("could not draw a free N_ID");
  for (uint32_t p : req.peers) {
    if (p == n_id)
      return InvalidArgumentError("a node cannot pair with itself");
  }
  NodeDesc d;
  d.n_id = n_id;
  d.entry_no = static_cast<uint16_t>(nodes_.size() + 1);
  d.state = NodeState::kAuthorized;
  d.allowed_peers = req.peers;
  KGR_ASSIGN_OR_RETURN(SecretBytes salt, RandomSecret(kNtagSaltSize));
  d.ntag = ComputeNtag(n_id, kedk_public_, d.entry_no, salt.span());
  std::vector<NodeDesc> batch;
  for (uint32_t p : req.peers) {
    auto peer = GetNode(p);
    if (!peer.ok()) continue;  // allowed in advance; checked at key time
    NodeDesc updated = peer->Clone();
    if (!Contains(updated.allowed_peers, n_id)) {
      updated.allowed_peers.push_back(n_id);
    }
    batch.push_back(std::move(updated));
  }
  batch.push_back(d.Clone());
  KGR_RETURN_IF_ERROR(PutNodes(batch));
  ans->status = 0;
  ans->n_id = n_id;
  ans->entry_no = d.entry_no;
  ans->ntag = d.ntag.Clone();
  ans->ks_topic1 = own_.identity.own_topic;
  ans->ks_n_id = own_.identity.n_id;
  ++stats_.authorizations;
  spdlog::info("ks: authorized node {} (entry {}, {} peers)",
               FormatNodeId(n_id), d.entry_no, req.peers.size());
  return OkStatus();
}

Status KeyServer::SetPeers(const AcPeersReq& req) {
  auto node = GetNode(req.n_id);
  if (!node.ok()) return NotFoundError("unknown node");
  std::map<uint32_t, NodeDesc> changed;
  changed.emplace(req.n_id, node->Clone());
  for (uint32_t p : req.peers) {
    if (p == req.n_id) return InvalidArgumentError("node paired with itself");
    auto peer = GetNode(p);
    if (peer.ok()) changed.emplace(p, peer->Clone());
  }
  auto link = [&](NodeDesc& a, uint32_t b) {
    auto& v = a.allowed_peers;
    if (req.allow) {
      if (!Contains(v, b)) v.push_back(b);
    } else {
      v.erase(std::remove(v.begin(), v.end(), b), v.end());
    }
  };
  for (uint32_t p : req.peers) {
    link(changed.at(req.n_id), p);
    auto it = changed.find(p);
    if (it != changed.end()) link(it->second, req.n_id);
  }
  std::vector<NodeDesc> batch;
  for (auto& [id, d] : changed) batch.push_back(std::move(d));
  KGR_RETURN_IF_ERROR(PutNodes(batch));
  if (!req.allow) {
    for (uint32_t p : req.peers) {
      NotifyPairRevoked(req.n_id, p, RevokeReason::kPairWithdrawn);
      NotifyPairRevoked(p, req.n_id, RevokeReason::kPairWithdrawn);
    }
  }
  return OkStatus();
}

bool KeyServer::NotifyPairRevoked(uint32_t node, uint32_t peer,
                                  RevokeReason reason) {
  auto d = GetNode(node);
  if (!d.ok() || d->state != NodeState::kRegistered) return false;
  Status st = SendToNode(*d, 0, 0, PairRevoked{peer, reason});
  if (!st.ok()) {
    spdlog::warn("ks: pair_revoked to {} not sent: {}", FormatNodeId(node),
                 st.ToString());
    return false;
  }
  return true;
}

Status KeyServer::RevokeNode(uint32_t n_id, int* notified) {
  *notified = 0;
  auto node = GetNode(n_id);
  if (!node.ok()) return NotFoundError("unknown node");
  if (node->state == NodeState::kRevoked) return OkStatus();
  // Its peers first lose it from their allowed lists...
  std::vector<NodeDesc> batch;
  for (uint32_t p : node->allowed_peers) {
    auto peer = GetNode(p);
    if (!peer.ok()) continue;
    NodeDesc updated = peer->Clone();
    auto& v = updated.allowed_peers;
    v.erase(std::remove(v.begin(), v.end(), n_id), v.end());
    batch.push_back(std::move(updated));
  }
  // ...and the node keeps a record that refuses everything it sends.
  NodeDesc revoked = node->Clone();
  revoked.state = NodeState::kRevoked;
  revoked.nksk = SymmetricKeys{};
  revoked.allowed_peers.clear();
  batch.push_back(std::move(revoked));
  KGR_RETURN_IF_ERROR(PutNodes(batch));
  std::vector<uint64_t> pending;
  gen_keys_.ForEach([&](const GenKey& g) {
    if (g.n_id1 == n_id || g.n_id2 == n_id) pending.push_back(g.request_id);
  });
  for (uint64_t id : pending) gen_keys_.DeleteUnsynced(id);
  windows_.erase(n_id);
  for (uint32_t p : node->allowed_peers) {
    if (NotifyPairRevoked(p, n_id, RevokeReason::kPeerRevoked)) ++*notified;
  }
  spdlog::warn("ks: node {} revoked; {} pending keys dropped, {} peers told",
               FormatNodeId(n_id), pending.size(), *notified);
  return OkStatus();
}

AcListAns KeyServer::ListNodes(uint32_t after) const {
  AcListAns page;
  size_t bytes = AcListAns::kHeaderSize;
  const std::vector<uint32_t> ids = nodes_.List();  // ascending
  for (auto it = std::upper_bound(ids.begin(), ids.end(), after);
       it != ids.end(); ++it) {
    auto d = nodes_.Get(*it);
    if (!d.ok()) continue;  // changed or unreadable since List(): skipped
    AcListAns::Entry e{d->n_id, static_cast<uint8_t>(d->state), d->entry_no,
                       d->allowed_peers};
    const size_t size = AcListAns::EntrySize(e);
    if (!page.nodes.empty() && bytes + size > options_.ac_list_page_bytes) {
      page.more = 1;
      break;
    }
    bytes += size;
    page.nodes.push_back(std::move(e));
  }
  return page;
}

void KeyServer::HandleAc(const Bytes& message) {
  auto opened = cms_->DecryptAndVerify(message);
  if (!opened.ok())
    return Drop(nullptr, "AC message: " + opened.status().message());
  const CmsPeer& peer = opened->second;
  if (peer.organizational_unit != "kgr-ac") {
    return Drop(nullptr, "AC message signed by a non-AC certificate (" +
                             peer.common_name + ")");
  }
  FrameHeader h;
  auto body = DecodeClearFrame(opened->first.span(), &h);
  if (!body.ok()) return Drop(nullptr, body.status().message());
  if (h.sender != kAcSender) return Drop(&h, "AC frame with a sender N_ID");
  if (!ac_window_.IsFresh(h.counter)) return Drop(&h, "replayed counter");
  ac_window_.Accept(h.counter);

  Bytes reply_body;
  FrameType reply_type;
  switch (h.type) {
    case FrameType::kAcAuthorizeReq: {
      auto req = AcAuthorizeReq::Parse(*body);
      if (!req.ok()) return Drop(&h, req.status().message());
      AcAuthorizeAns ans;
      Status st = AuthorizeNode(*req, &ans);
      if (!st.ok()) {
        spdlog::warn("ks: authorization refused: {}", st.ToString());
        ans = AcAuthorizeAns{};
        ans.status = static_cast<uint8_t>(st.code());
      }
      ans.EncodeTo(&reply_body);
      reply_type = FrameType::kAcAuthorizeAns;
      break;
    }
    case FrameType::kAcPeersReq: {
      auto req = AcPeersReq::Parse(*body);
      if (!req.ok()) return Drop(&h, req.status().message());
      Status st = SetPeers(*req);
      if (!st.ok())
        spdlog::warn("ks: peers refused: {}", st.ToString());
      else
        spdlog::info("ks: {} {} peers of {}",
                     req->allow ? "allowed" : "withdrew", req->peers.size(),
                     FormatNodeId(req->n_id));
      AcPeersAns{static_cast<uint8_t>(st.code())}.EncodeTo(&reply_body);
      reply_type = FrameType::kAcPeersAns;
      break;
    }
    case FrameType::kAcRevokeReq: {
      auto req = AcRevokeReq::Parse(*body);
      if (!req.ok()) return Drop(&h, req.status().message());
      int notified = 0;
      Status st = RevokeNode(req->n_id, &notified);
      if (!st.ok()) spdlog::warn("ks: revocation refused: {}", st.ToString());
      AcRevokeAns{static_cast<uint8_t>(st.code()),
                  static_cast<uint16_t>(notified)}
          .EncodeTo(&reply_body);
      reply_type = FrameType::kAcRevokeAns;
      break;
    }
    case FrameType::kAcListReq: {
      auto req = AcListReq::Parse(*body);
      if (!req.ok()) return Drop(&h, "bad ac_list_req");
      ListNodes(req->after).EncodeTo(&reply_body);
      reply_type = FrameType::kAcListAns;
      break;
    }
    default:
      return Drop(&h, "not an AC request");
  }
  FrameHeader out;
  out.type = reply_type;
  out.sender = own_.identity.n_id;
  out.counter = counter_.Next(clock_.NowUnixMicros());
  out.request_id = h.request_id;
  auto clear = EncodeClearFrame(out, reply_body);
  WipeVector(reply_body);
  if (!clear.ok()) return;
  auto sealed = cms_->SignAndEncrypt(*clear, peer.certificate_der);
  WipeVector(*clear);
  if (!sealed.ok()) {
    spdlog::error("ks: AC reply not sealed: {}", sealed.status().ToString());
    return;
  }
  Status st = transport_.Publish(
      std::string(own_.identity.topic_prefix) + "/ac/replies", *sealed);
  if (!st.ok()) spdlog::warn("ks: AC reply not sent: {}", st.ToString());
}

// ---- inbox ----

bool KeyServerInbox::Push(const std::string& topic, Bytes payload) {
  // The KeyServer's topics never change: comparing needs no lock.
  Lane* lane_of[] = {&lanes_[kAcLane], &lanes_[kRegisterLane],
                     &lanes_[kTopic1Lane]};
  Lane& lane = *lane_of[topic == ks_.ac_topic()         ? 0
                        : topic == ks_.register_topic() ? 1
                                                        : 2];
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (lane.messages.size() >= max_messages_ ||
        lane.bytes + payload.size() > max_bytes_) {
      dropped_.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
    lane.bytes += payload.size();
    lane.messages.push_back({topic, std::move(payload)});
    if (posted_) return true;
    posted_ = true;
  }
  if (!loop_.Post([this] { Drain(); })) {
    std::lock_guard<std::mutex> lock(mu_);
    posted_ = false;
    dropped_.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  return true;
}

void KeyServerInbox::Drain() {
  Lane batch[kLanes];
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (int i = 0; i < kLanes; ++i) std::swap(batch[i], lanes_[i]);
    posted_ = false;
  }
  // Bounded batches keep the latency of the first message low.
  constexpr size_t kMaxBatch = 256;
  for (const Lane& lane : batch) {
    std::span<const KeyServer::Message> all(lane.messages);
    for (size_t i = 0; i < all.size(); i += kMaxBatch) {
      ks_.HandleMessages(all.subspan(i, std::min(kMaxBatch, all.size() - i)));
    }
  }
}

// ---- init (4.2) ----

StatusOr<OwnData> InitKeyServer(Tpm& tpm, const std::string& broker_address,
                                const std::string& topic_prefix) {
  KGR_RETURN_IF_ERROR(ValidateTopicPrefix(topic_prefix));
  KGR_RETURN_IF_ERROR(tpm.EnsureTrustStructure(/*with_kedk=*/true));
  auto existing = LoadOwnData(tpm);
  if (existing.ok()) {
    if (existing->identity.role != Role::kKeyServer) {
      return FailedPreconditionError("this TPM holds an N node's identity");
    }
    spdlog::info("ks: already initialized as {}",
                 FormatNodeId(existing->identity.n_id));
    return existing;
  }
  if (existing.status().code() != StatusCode::kNotFound) {
    return existing.status();
  }
  KGR_RETURN_IF_ERROR(MixTpmEntropy(tpm));
  OwnData d;
  d.identity.role = Role::kKeyServer;
  KGR_ASSIGN_OR_RETURN(d.identity.n_id, RandomU32());
  d.identity.broker_address = broker_address;
  d.identity.topic_prefix = topic_prefix;
  KGR_ASSIGN_OR_RETURN(d.identity.own_topic, RandomTopicId());
  KGR_ASSIGN_OR_RETURN(d.nk, SymmetricKeys::Generate());
  KGR_RETURN_IF_ERROR(SaveInitialOwnData(tpm, d));
  spdlog::info("ks: initialized as {}", FormatNodeId(d.identity.n_id));
  return d;
}

}  // namespace kgr
