#include <spdlog/spdlog.h>

#include <algorithm>

#include "kgr/key_server.h"
#include "ks/context.h"
#include "ks/internal.h"

namespace kgr::ks {

// ---- registration (4.5) ----

namespace {

// Step 2: node_desc is durable before the keys leave the KS. Written over
// the record as stored: another instance may have changed it (its peers,
// say) since this one cached `node`, or registered the node itself.
StatusOr<NodeDesc> StoreRegistration(Context& ctx, const NodeDesc& node,
                                     const TopicId& topic2,
                                     uint64_t last_counter) {
  KGR_ASSIGN_OR_RETURN(SymmetricKeys nksk, SymmetricKeys::Generate());
  const uint64_t now_ms = ctx.clock.NowUnixMillis();
  std::vector<NodeDesc> written;
  KGR_RETURN_IF_ERROR(UpdateNodes(
      ctx,
      [&](NodeDescTxn& txn) -> Status {
        KGR_ASSIGN_OR_RETURN(NodeDesc d, txn.Get(node.n_id));
        if (d.state != NodeState::kAuthorized || !d.ntag.Equals(node.ntag)) {
          return AbortedError(
              "registered or revoked meanwhile by another instance");
        }
        d.state = NodeState::kRegistered;
        d.nksk = nksk.Clone();
        d.nksk_version = 1;
        d.topic2 = topic2;
        d.last_counter = std::max(d.last_counter, last_counter);
        d.registered_unix_ms = now_ms;
        d.nksk_unused = true;
        txn.Put(std::move(d));
        return OkStatus();
      },
      &written));
  if (written.size() != 1) return InternalError("nothing written");
  return std::move(written[0]);
}

}  // namespace

void HandleRegistration(Context& ctx, const Bytes& frame) {
  auto peek = PeekFrameHeader(frame);
  if (!peek.ok())
    return Drop(ctx, nullptr, DropReason::kMalformed, peek.status().message());
  const FrameHeader& h = *peek;
  if (h.type != FrameType::kNkskKeyReq)
    return Drop(ctx, &h, DropReason::kUnexpected, "not nksk_key_req");
  if (!Admit(ctx, h)) return;
  auto node = GetNode(ctx, h.sender);
  if (!node.ok())
    return Drop(ctx, &h, DropReason::kUnknownNode, "unknown N_ID");
  if (node->state == NodeState::kRevoked)
    return Drop(ctx, &h, DropReason::kRevoked, "node revoked");
  // A repetition of the registration that succeeded (the answer was lost,
  // or the node died before storing its keys): answered with the same keys
  // as long as the node has not used them (then it holds them). Any other
  // request after registration is refused.
  bool repeat = node->state == NodeState::kRegistered &&
                h.request_id == RegistrationRequestId(node->ntag) &&
                node->nksk_unused && !Contains(ctx.dirty_counters, node->n_id);
  if (node->state == NodeState::kRegistered && !repeat) {
    return Drop(ctx, &h, DropReason::kAlreadyRegistered,
                "NTAG already used (node registered)");
  }
  ReplayWindow& window = WindowFor(ctx, *node);
  if (!window.IsFresh(h.counter))
    return Drop(ctx, &h, DropReason::kReplay, "replayed counter");
  auto keys = RegistrationKeys(node->ntag, node->n_id, FrameType::kNkskKeyReq);
  if (!keys.ok())
    return Drop(ctx, &h, DropReason::kInternal, keys.status().message());
  FrameHeader opened;
  auto req = OpenBody<NkskKeyReq>(frame, *keys, &opened);
  if (!req.ok())
    return Drop(ctx, &h, DropReason::kMalformed, req.status().message());
  if (req->n_id != node->n_id || !req->ntag.Equals(node->ntag)) {
    return Drop(ctx, &h, DropReason::kBadMac, "NTAG does not match");
  }
  // Charged only now: frames carrying this N_ID that do not prove its NTAG
  // cost the node nothing, and TOPIC1 traffic has its own budget.
  if (!Charge(ctx, h, ctx.registration_limiter, &ctx.registrations_limiter))
    return;
  window.Accept(h.counter);
  if (repeat) {
    if (node->topic2 != req->topic2)
      return Drop(ctx, &h, DropReason::kMismatch, "TOPIC2 changed");
    spdlog::info("ks: node {} asked again for its registration: same keys",
                 FormatNodeId(h.sender));
    return SendRegistrationAnswer(ctx, *node, h.request_id);
  }

  auto registered =
      StoreRegistration(ctx, *node, req->topic2, window.highest());
  if (!registered.ok()) {
    spdlog::error("ks: registration of {} not stored: {}",
                  FormatNodeId(h.sender), registered.status().ToString());
    return;
  }
  ++ctx.stats.registrations;
  spdlog::info("ks: node {} registered", FormatNodeId(h.sender));
  SendRegistrationAnswer(ctx, *registered, h.request_id);
}

void SendRegistrationAnswer(Context& ctx, const NodeDesc& node,
                            uint64_t request_id) {
  auto ans_keys =
      RegistrationKeys(node.ntag, node.n_id, FrameType::kNkskKeyAns);
  if (!ans_keys.ok() || !node.topic2.has_value()) return;
  FrameHeader out;
  out.sender = ctx.own.identity.n_id;
  out.counter = ctx.counter.Next(ctx.clock.NowUnixMicros());
  out.request_id = request_id;
  NkskKeyAns ans{node.nksk.Clone(), ctx.own.identity.own_topic};
  auto sealed = SealBody(out, ans, *ans_keys);
  if (!sealed.ok()) return;
  Status st =
      ctx.transport.Publish(TopicName(ctx.own.identity.topic_prefix,
                                      NodeIdentity(node.n_id), *node.topic2),
                            *sealed);
  if (!st.ok()) spdlog::warn("ks: nksk_key_ans not sent: {}", st.ToString());
}

}  // namespace kgr::ks
