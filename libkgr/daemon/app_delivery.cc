// The application API's receiving side: messages from peers delivered to
// the subscribed applications, their answers, duplicates, events
// (app_router.h).
#include <spdlog/spdlog.h>

#include <string>

#include "daemon/app_router.h"
#include "kgr/app_wire.h"
#include "kgr/topic.h"

namespace kgr {
namespace {

// How long a request from a peer is remembered (its retransmissions come
// within the sender's request timeout), and how many at most.
constexpr uint64_t kRememberMs = 120'000;
constexpr size_t kRememberMax = 65536;

}  // namespace

bool AppRouter::Listens(const App& app, uint32_t peer) const {
  return app.subscribed && access_.Allows(app.uid, peer) &&
         (!app.peers.has_value() || app.peers->count(peer) > 0);
}

int AppRouter::Deliver(uint32_t peer, const nlohmann::json& event) {
  int took = 0;
  for (const auto& [conn, app] : apps_) {
    if (Listens(app, peer) && server_.Send(conn, event, true)) ++took;
  }
  return took;
}

bool AppRouter::AnyoneHasRoom(uint32_t peer,
                              const nlohmann::json& event) const {
  const size_t bytes = EncodeAppFrame(event).size();
  for (const auto& [conn, app] : apps_) {
    if (Listens(app, peer) && server_.HasRoomForEvent(conn, bytes)) return true;
  }
  return false;
}

void AppRouter::Answer(uint32_t peer, uint64_t request_id, Bytes answer) {
  Status st = client_.AnswerData(peer, request_id, SecretBytes(Bytes(answer)));
  if (!st.ok()) {
    spdlog::warn("api: answer to {} not sent: {}", FormatNodeId(peer),
                 st.ToString());
  }
  Seen& s = seen_[{peer, request_id}];
  s.answered = true;
  s.answer = std::move(answer);
}

void AppRouter::OnData(const DataDelivery& from, SecretBytes data) {
  SeenKey key{from.peer, from.request_id};
  if (auto it = seen_.find(key); it != seen_.end()) {
    // A retransmission: the same answer again, or still waiting for one.
    if (it->second.answered) {
      (void)client_.AnswerData(from.peer, from.request_id,
                               SecretBytes(Bytes(it->second.answer)));
    }
    return;
  }
  seen_[key].at_ms = now_ms_;
  seen_order_.emplace_back(now_ms_, key);
  Bytes bytes(data.span().begin(), data.span().end());
  auto envelope = UnwrapApp(bytes);
  nlohmann::json event = {{"event", "message"},
                          {"peer", FormatNodeId(from.peer)},
                          {"key_version", from.key_version},
                          {"counter", from.counter},
                          {"request", false}};
  if (!envelope.has_value()) {
    // Raw bytes (`kgr-node send`): one-way for the applications; the
    // daemon answers as it always did.
    spdlog::info("node: {} bytes of data from {}", bytes.size(),
                 FormatNodeId(from.peer));
    std::string ack = "ack " + std::to_string(bytes.size()) + " bytes";
    event["data"] = Base64Encode(bytes);
    Deliver(from.peer, event);
    return Answer(from.peer, from.request_id, Bytes(ack.begin(), ack.end()));
  }
  if (envelope->code != static_cast<uint8_t>(AppKind::kOneWay) &&
      envelope->code != static_cast<uint8_t>(AppKind::kRequest)) {
    spdlog::warn("api: message of unknown kind {} from {} dropped",
                 envelope->code, FormatNodeId(from.peer));
    return;
  }
  bool request = envelope->code == static_cast<uint8_t>(AppKind::kRequest);
  event["data"] = Base64Encode(envelope->data);
  uint64_t token = 0;
  if (request) {
    token = next_token_++;
    event["request"] = true;
    event["token"] = token;
  }
  int took = AnyoneHasRoom(from.peer, event) ? Deliver(from.peer, event) : 0;
  bool anyone = false;
  for (const auto& [conn, app] : apps_)
    anyone = anyone || Listens(app, from.peer);
  if (took == 0) {
    return Answer(
        from.peer, from.request_id,
        WrapAppAnswer(anyone ? AppAnswer::kBusy : AppAnswer::kNoReceiver, {}));
  }
  if (!request) {
    return Answer(from.peer, from.request_id,
                  WrapAppAnswer(AppAnswer::kDelivered, {}));
  }
  seen_[key].token = token;
  tokens_[token] = key;
}

void AppRouter::AnswerOp(uint64_t conn, App& app, const nlohmann::json& m) {
  nlohmann::json id = m.value("id", nlohmann::json());
  auto token = AppUintField(m, "token", std::nullopt);
  if (!token.ok()) return Fail(conn, id, token.status());
  auto data = AppDataField(m, "data");
  if (!data.ok()) return Fail(conn, id, data.status());
  auto it = tokens_.find(*token);
  if (it == tokens_.end()) {
    return Fail(
        conn, id,
        NotFoundError("no request with token " + std::to_string(*token) +
                      " waits for an answer (answered or expired)"));
  }
  SeenKey key = it->second;
  if (!Listens(app, key.first)) {
    return Fail(conn, id,
                PermissionDeniedError("this application does not receive "
                                      "from peer " +
                                      FormatNodeId(key.first)));
  }
  tokens_.erase(it);
  Answer(key.first, key.second, WrapAppAnswer(AppAnswer::kAnswered, *data));
  server_.Send(conn, {{"id", id}, {"ok", true}}, false);
}

void AppRouter::OnPairEnd(uint32_t peer, PairEnd why) {
  key_versions_.erase(peer);
  Deliver(peer, {{"event", why == PairEnd::kPeerRevoked ? "peer_revoked"
                                                        : "pair_withdrawn"},
                 {"peer", FormatNodeId(peer)}});
}

void AppRouter::KeyEvents() {
  for (const PairInfo& p : client_.Pairs()) {
    if (!p.has_key) continue;
    auto [it, first] = key_versions_.emplace(p.peer, p.key_version);
    if (!first && it->second == p.key_version) continue;
    it->second = p.key_version;
    Deliver(p.peer, {{"event", first ? "key_ready" : "key_renewed"},
                     {"peer", FormatNodeId(p.peer)},
                     {"key_version", p.key_version}});
  }
}

void AppRouter::ForgetOld(uint64_t now_ms) {
  while (!seen_order_.empty() &&
         (seen_order_.front().first + kRememberMs < now_ms ||
          seen_order_.size() > kRememberMax)) {
    auto it = seen_.find(seen_order_.front().second);
    if (it != seen_.end()) {
      if (it->second.token != 0) tokens_.erase(it->second.token);
      seen_.erase(it);
    }
    seen_order_.pop_front();
  }
}

void AppRouter::Tick(uint64_t now_ms) {
  now_ms_ = now_ms;
  for (auto& [peer, q] : out_) {
    if (q.retry.has_value() && q.retry_at_ms <= now_ms) {
      Outgoing msg = std::move(*q.retry);
      q.retry.reset();
      Transmit(peer, std::move(msg));
    }
  }
  if (now_ms - last_slow_tick_ms_ < 500) return;
  last_slow_tick_ms_ = now_ms;
  ForgetOld(now_ms);
  KeyEvents();
}

}  // namespace kgr
