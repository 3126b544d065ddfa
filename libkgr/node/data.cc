// N data exchange (4.8): sending a request, receiving requests and
// answers under the pair's keys.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <optional>

#include "kgr/node_client.h"

namespace kgr {

void NodeClient::Send(uint32_t peer, SecretBytes data, ReplyCallback done,
                      uint64_t timeout_ms) {
  if (data.size() > kMaxDataSize) {
    return done(InvalidArgumentError("data larger than " +
                                     std::to_string(kMaxDataSize) + " bytes"));
  }
  auto id = RandomU64();
  if (!id.ok()) return done(id.status());
  Pending p{.request = DataRequest{peer, std::move(data), std::move(done)}};
  Schedule(p, timeout_ms);
  auto [it, inserted] = pending_.emplace(*id, std::move(p));
  Status st = Transmit(*id, it->second);
  if (!st.ok()) return Finish(*id, st);
  ++stats_.data_sent;
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
  const char* why = nullptr;
  const SymmetricKeys* keys = ReceiveKey(h, *rec, ps, &why);
  if (keys == nullptr) return Log("dropped", &h, why);
  auto wit = ps.windows.find(h.key_version);
  if (wit == ps.windows.end()) {
    // First frame under this version since we started: continue from the
    // persisted counter (a restart must not reopen the window).
    uint64_t floor = h.key_version == rec->key_version ? rec->rx_counter
                     : keys == &rec->other_nnsk        ? rec->other_rx_counter
                                                       : 0;
    wit = ps.windows.emplace(h.key_version, ReplayWindow(floor)).first;
  }
  ReplayWindow& window = wit->second;
  if (!window.IsFresh(h.counter)) return Log("dropped", &h, "replayed");
  FrameHeader opened;
  auto plain = OpenFrame(frame, *keys, &opened);
  if (!plain.ok()) return Log("dropped", &h, plain.status().message());
  // The durable floor goes above the frame before it is accepted, so that a
  // restart never reopens it; under the previous key too (the peer still
  // sends under it while a renewal is in progress).
  std::optional<KeySlot> slot;
  if (keys == &rec->nnsk && h.counter > rec->rx_counter) {
    slot = KeySlot::kCurrent;
  } else if (keys == &rec->other_nnsk && rec->has_previous() &&
             h.counter > rec->other_rx_counter) {
    slot = KeySlot::kPrevious;
  }
  if (slot.has_value()) {
    Status st = ReserveRx(*rec, *slot, h.counter);
    if (!st.ok()) return Log("dropped", &h, st.message());
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
  DeliverData(peer, *rec, h, *plain);
}

void NodeClient::DeliverData(uint32_t peer, const SesKey& rec,
                             const FrameHeader& h, const SecretBytes& plain) {
  if (h.type == FrameType::kNodeDataAns) {
    auto ans = NodeDataAns::Parse(plain.span());
    if (!ans.ok()) return Log("dropped", &h, ans.status().message());
    ++stats_.data_received;
    DataRequest* d = Find<DataRequest>(h.request_id);
    if (d == nullptr || d->peer != peer) return;  // a late duplicate answer
    ReplyCallback reply = std::move(d->reply);
    pending_.erase(h.request_id);
    if (reply) reply(std::move(ans->data));
    return;
  }
  auto req = NodeDataReq::Parse(plain.span());
  if (!req.ok()) return Log("dropped", &h, req.status().message());
  if (req->n_id2 != n_id()) return Log("dropped", &h, "not addressed to us");
  ++stats_.data_received;
  if (async_handler_) {
    DataDelivery from{.peer = peer,
                      .key_version = h.key_version,
                      .counter = h.counter,
                      .request_id = h.request_id};
    return async_handler_(from, std::move(req->data));
  }
  SecretBytes reply = handler_ ? handler_(peer, req->data) : SecretBytes();
  ReplyData(peer, rec, h, std::move(reply));
}

Status NodeClient::AnswerData(uint32_t peer, uint64_t request_id,
                              SecretBytes reply) {
  KGR_ASSIGN_OR_RETURN(SesKey rec, ses_.Get(peer));
  FrameHeader h;
  h.sender = peer;
  h.request_id = request_id;
  ReplyData(peer, rec, h, std::move(reply));
  return OkStatus();
}

const SymmetricKeys* NodeClient::ReceiveKey(const FrameHeader& h,
                                            const SesKey& rec, PairState& ps,
                                            const char** why) {
  if (rec.nnsk.valid() && h.key_version == rec.key_version) {
    // Before step 6 a write of the entry resets its receive floor: nothing
    // is accepted under a key we have not confirmed (the peer sends again).
    if (!rec.topic4.has_value()) {
      *why = "key not confirmed yet";
      return nullptr;
    }
    return &rec.nnsk;
  }
  if (rec.other_nnsk.valid() && h.key_version == rec.other_version &&
      (rec.has_next() || ps.previous_until_ms == 0 ||
       clock_.NowUnixMillis() < ps.previous_until_ms)) {
    return &rec.other_nnsk;
  }
  // A newer key we do not hold (an older one is a late frame). The header
  // is not authenticated: it is only a hint for the version of our next
  // renewal, never a reason to start one (anyone who can publish on the
  // topic could force renewals). Unanswered data starts one (Tick).
  if (h.key_version > rec.key_version &&
      h.key_version - rec.key_version < 1024) {
    ps.seen_version = std::max(ps.seen_version, h.key_version);
  }
  *why = "no key of that version";
  return nullptr;
}

}  // namespace kgr
