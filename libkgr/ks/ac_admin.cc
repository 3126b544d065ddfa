#include <spdlog/spdlog.h>

#include <algorithm>

#include "kgr/key_server.h"
#include "ks/context.h"
#include "ks/group_state.h"
#include "ks/internal.h"

namespace kgr::ks {

// ---- AC requests (4.3, 4.6) ----

Status AuthorizeNode(Context& ctx, const AcAuthorizeReq& req,
                     AcAuthorizeAns* ans) {
  uint32_t n_id = 0;
  for (int attempt = 0; attempt < 16 && n_id == 0; ++attempt) {
    KGR_ASSIGN_OR_RETURN(uint32_t candidate, RandomU32());
    if (candidate != 0 && candidate != ctx.own.identity.n_id &&
        !GetNode(ctx, candidate).ok()) {
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
  d.entry_no = static_cast<uint16_t>(ctx.nodes.size() + 1);
  d.state = NodeState::kAuthorized;
  d.allowed_peers = req.peers;
  KGR_ASSIGN_OR_RETURN(SecretBytes salt, RandomSecret(kNtagSaltSize));
  d.ntag = ComputeNtag(n_id, ctx.kedk_public, d.entry_no, salt.span());
  // The new record (created only if no instance took the N_ID meanwhile)
  // and its peers' records as stored, each allowing it.
  KGR_RETURN_IF_ERROR(UpdateNodes(ctx, [&](NodeDescTxn& txn) -> Status {
    auto taken = txn.Get(n_id);
    if (taken.ok()) return AbortedError("N_ID taken meanwhile");
    if (taken.status().code() != StatusCode::kNotFound) return taken.status();
    for (uint32_t p : req.peers) {
      auto peer = txn.Get(p);
      if (!peer.ok()) continue;  // allowed in advance; checked at key time
      if (!Contains(peer->allowed_peers, n_id)) {
        peer->allowed_peers.push_back(n_id);
      }
      txn.Put(*std::move(peer));
    }
    txn.Put(d.Clone());
    return OkStatus();
  }));
  ans->status = 0;
  ans->n_id = n_id;
  ans->entry_no = d.entry_no;
  ans->ntag = d.ntag.Clone();
  ans->ks_topic1 = ctx.own.identity.own_topic;
  ans->ks_n_id = ctx.own.identity.n_id;
  ++ctx.stats.authorizations;
  spdlog::info("ks: authorized node {} (entry {}, {} peers)",
               FormatNodeId(n_id), d.entry_no, req.peers.size());
  return OkStatus();
}

AcListAns ListNodes(const Context& ctx, uint32_t after) {
  AcListAns page;
  size_t bytes = AcListAns::kHeaderSize;
  const std::vector<uint32_t> ids = ctx.nodes.List();  // ascending
  for (auto it = std::upper_bound(ids.begin(), ids.end(), after);
       it != ids.end(); ++it) {
    auto d = ctx.nodes.Get(*it);
    if (!d.ok()) continue;  // changed or unreadable since List(): skipped
    AcListAns::Entry e{d->n_id, static_cast<uint8_t>(d->state), d->entry_no,
                       d->allowed_peers};
    const size_t size = AcListAns::EntrySize(e);
    if (!page.nodes.empty() && bytes + size > ctx.options.ac_list_page_bytes) {
      page.more = 1;
      break;
    }
    bytes += size;
    page.nodes.push_back(std::move(e));
  }
  return page;
}

namespace {

// Runs one verified AC request; false if it was dropped (nothing to answer).
bool AnswerAc(Context& ctx, const FrameHeader& h, std::span<const uint8_t> body,
              Bytes* reply_body, FrameType* reply_type) {
  switch (h.type) {
    case FrameType::kAcAuthorizeReq: {
      auto req = AcAuthorizeReq::Parse(body);
      if (!req.ok()) {
        Drop(ctx, &h, DropReason::kMalformed, req.status().message());
        return false;
      }
      AcAuthorizeAns ans;
      Status st = AuthorizeNode(ctx, *req, &ans);
      if (!st.ok()) {
        spdlog::warn("ks: authorization refused: {}", st.ToString());
        ans = AcAuthorizeAns{};
        ans.status = static_cast<uint8_t>(st.code());
      }
      ans.EncodeTo(reply_body);
      *reply_type = FrameType::kAcAuthorizeAns;
      return true;
    }
    case FrameType::kAcPeersReq: {
      auto req = AcPeersReq::Parse(body);
      if (!req.ok()) {
        Drop(ctx, &h, DropReason::kMalformed, req.status().message());
        return false;
      }
      Status st = SetPeers(ctx, *req);
      if (!st.ok())
        spdlog::warn("ks: peers refused: {}", st.ToString());
      else
        spdlog::info("ks: {} {} peers of {}",
                     req->allow ? "allowed" : "withdrew", req->peers.size(),
                     FormatNodeId(req->n_id));
      AcPeersAns{static_cast<uint8_t>(st.code())}.EncodeTo(reply_body);
      *reply_type = FrameType::kAcPeersAns;
      return true;
    }
    case FrameType::kAcRevokeReq: {
      auto req = AcRevokeReq::Parse(body);
      if (!req.ok()) {
        Drop(ctx, &h, DropReason::kMalformed, req.status().message());
        return false;
      }
      int notified = 0;
      Status st = RevokeNode(ctx, req->n_id, &notified);
      if (!st.ok()) spdlog::warn("ks: revocation refused: {}", st.ToString());
      AcRevokeAns{static_cast<uint8_t>(st.code()),
                  static_cast<uint16_t>(notified)}
          .EncodeTo(reply_body);
      *reply_type = FrameType::kAcRevokeAns;
      return true;
    }
    case FrameType::kAcListReq: {
      auto req = AcListReq::Parse(body);
      if (!req.ok()) {
        Drop(ctx, &h, DropReason::kMalformed, "bad ac_list_req");
        return false;
      }
      ListNodes(ctx, req->after).EncodeTo(reply_body);
      *reply_type = FrameType::kAcListAns;
      return true;
    }
    default:
      if (IsGroupAdminFrameType(static_cast<uint8_t>(h.type)))  // groups
        return AnswerGroupAc(ctx, h, body, reply_body, reply_type);
      Drop(ctx, &h, DropReason::kUnexpected, "not an AC request");
      return false;
  }
}

// Seals the answer to `h` for the AC that sent it and publishes it.
void SendAcReply(Context& ctx, const FrameHeader& h, FrameType reply_type,
                 Bytes& reply_body, const CmsPeer& peer) {
  FrameHeader out;
  out.type = reply_type;
  out.sender = ctx.own.identity.n_id;
  out.counter = ctx.counter.Next(ctx.clock.NowUnixMicros());
  out.request_id = h.request_id;
  auto clear = EncodeClearFrame(out, reply_body);
  WipeVector(reply_body);
  if (!clear.ok()) return;
  auto sealed = ctx.cms->SignAndEncrypt(*clear, peer.certificate_der);
  WipeVector(*clear);
  if (!sealed.ok()) {
    spdlog::error("ks: AC reply not sealed: {}", sealed.status().ToString());
    return;
  }
  Status st = ctx.transport.Publish(
      std::string(ctx.own.identity.topic_prefix) + "/ac/replies", *sealed);
  if (!st.ok()) spdlog::warn("ks: AC reply not sent: {}", st.ToString());
}

}  // namespace

void HandleAc(Context& ctx, const Bytes& message) {
  auto opened = ctx.cms->DecryptAndVerify(message);
  if (!opened.ok())
    return Drop(ctx, nullptr, DropReason::kBadMac,
                "AC message: " + opened.status().message());
  const CmsPeer& peer = opened->second;
  if (peer.organizational_unit != "kgr-ac") {
    return Drop(
        ctx, nullptr, DropReason::kBadMac,
        "AC message signed by a non-AC certificate (" + peer.common_name + ")");
  }
  FrameHeader h;
  auto body = DecodeClearFrame(opened->first.span(), &h);
  if (!body.ok())
    return Drop(ctx, nullptr, DropReason::kMalformed, body.status().message());
  if (h.sender != kAcSender)
    return Drop(ctx, &h, DropReason::kUnexpected,
                "AC frame with a sender N_ID");
  if (!ctx.ac_window.IsFresh(h.counter))
    return Drop(ctx, &h, DropReason::kReplay, "replayed counter");
  // Durable before anything is done: a restart never accepts it again.
  if (ctx.options.persist_ac_counter &&
      (h.counter > ctx.ac_window.highest() || ctx.options.ac_counter_shared)) {
    Status saved = ctx.options.persist_ac_counter(h.counter);
    if (saved.code() == StatusCode::kAlreadyExists) {
      return Drop(ctx, &h, DropReason::kReplay,
                  "counter at or below the shared AC floor");
    }
    if (!saved.ok()) {
      return Drop(ctx, &h, DropReason::kInternal,
                  "AC replay floor not saved: " + saved.message());
    }
  }
  ctx.ac_window.Accept(h.counter);

  Bytes reply_body;
  FrameType reply_type;
  if (!AnswerAc(ctx, h, *body, &reply_body, &reply_type)) return;
  SendAcReply(ctx, h, reply_type, reply_body, peer);
}

}  // namespace kgr::ks
