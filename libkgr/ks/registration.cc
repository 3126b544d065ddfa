#include "kgr/key_server.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "ks/internal.h"

namespace kgr {

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

}  // namespace kgr
