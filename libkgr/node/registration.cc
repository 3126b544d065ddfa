// NodeClient: registration (seed 4.5). The request id is fixed per NTAG, so
// every request, retransmission or restart asks the same question, and the
// KS answers it with the same NKSK until the node has used it. The node
// therefore takes any answer to that id while it is not registered, and a
// daemon keeps asking (KeepRegistering) for as long as it runs: a KS that is
// away when the node starts never leaves it unregistered.
#include <spdlog/spdlog.h>

#include <algorithm>

#include "kgr/node_client.h"

namespace kgr {

void NodeClient::Register(DoneCallback done, uint64_t timeout_ms) {
  if (registered()) return done(OkStatus());
  if (own_.ntag.size() != kNtagSize) {
    return done(
        FailedPreconditionError("no NTAG: init from credentials first"));
  }
  uint64_t now = clock_.NowMonotonicMillis();
  Registration::Waiter w;
  w.done = std::move(done);
  w.timeout_ms = timeout_ms ? timeout_ms : options_.request_timeout_ms;
  w.deadline_ms = now + w.timeout_ms;
  w.sent_before = registration_.sent;
  registration_.waiters.push_back(std::move(w));
  // Someone waits now: ask at once, then retransmit at the request pace.
  registration_.backoff_ms = options_.first_retry_ms;
  SendRegistrationRequest(now);
}

void NodeClient::KeepRegistering() {
  if (registered() || registration_.keep_trying) return;
  if (own_.ntag.size() != kNtagSize) {
    spdlog::error("node {}: cannot register: no NTAG", FormatNodeId(n_id()));
    return;
  }
  registration_.keep_trying = true;
  spdlog::info("node {}: registering with the key server",
               FormatNodeId(n_id()));
  if (registration_.waiters.empty()) {
    registration_.backoff_ms = options_.first_retry_ms;
    SendRegistrationRequest(clock_.NowMonotonicMillis());
  }
}

void NodeClient::SendRegistrationRequest(uint64_t now) {
  Registration& r = registration_;
  ++r.sent;
  Status st = [&]() -> Status {
    KGR_ASSIGN_OR_RETURN(
        SymmetricKeys keys,
        RegistrationKeys(own_.ntag, n_id(), FrameType::kNkskKeyReq));
    FrameHeader h;
    h.sender = n_id();
    h.counter = counter_.Next(clock_.NowUnixMicros());
    // Fixed per NTAG: after a restart we ask again under the same id.
    h.request_id = RegistrationRequestId(own_.ntag);
    NkskKeyReq req{n_id(), own_.ntag.Clone(), own_.identity.own_topic};
    KGR_ASSIGN_OR_RETURN(Bytes frame, SealBody(h, req, keys));
    return transport_.Publish(RegisterTopic(own_.identity.topic_prefix), frame);
  }();
  if (!st.ok()) Log("registration request not sent", nullptr, st.message());
  // Capped exponential back-off, +-25% jitter: at the request pace while a
  // caller waits, slower (up to a minute) for the daemon's own loop.
  uint64_t cap = r.waiters.empty() ? options_.register_max_retry_ms
                                   : options_.max_retry_ms;
  r.backoff_ms = std::min(std::max<uint64_t>(r.backoff_ms, 1), cap);
  uint64_t jitter = 0;
  if (auto x = RandomU32(); x.ok()) jitter = *x % (r.backoff_ms / 2 + 1);
  r.next_send_ms = now + r.backoff_ms * 3 / 4 + jitter;
  r.backoff_ms = std::min(r.backoff_ms * 2, cap);
}

void NodeClient::TickRegistration(uint64_t now) {
  Registration& r = registration_;
  if (registered()) return;
  std::vector<Registration::Waiter> expired;
  for (auto it = r.waiters.begin(); it != r.waiters.end();) {
    if (now >= it->deadline_ms) {
      expired.push_back(std::move(*it));
      it = r.waiters.erase(it);
    } else {
      ++it;
    }
  }
  for (Registration::Waiter& w : expired) {
    w.done(DeadlineExceededError(
        "no answer from the key server within " + std::to_string(w.timeout_ms) +
        " ms (" + std::to_string(r.sent - w.sent_before) + " attempts)"));
  }
  if ((!r.keep_trying && r.waiters.empty()) || now < r.next_send_ms) return;
  int unanswered = r.sent;
  SendRegistrationRequest(now);
  if (r.waiters.empty()) {  // one line per request of the daemon's loop
    spdlog::warn(
        "node {}: not registered yet: no answer from the key server to {} "
        "requests; asked again, next in {} s",
        FormatNodeId(n_id()), unanswered, (r.next_send_ms - now + 999) / 1000);
  }
}

void NodeClient::FinishRegistration(const Status& status) {
  std::vector<Registration::Waiter> waiters;
  waiters.swap(registration_.waiters);
  for (Registration::Waiter& w : waiters) w.done(status);
}

void NodeClient::OnRegistered(const FrameHeader& h, const Bytes& frame) {
  if (registered()) {
    // A repeated answer (the KS answers every request it got, e.g. those
    // queued while it was away): the same keys.
    spdlog::debug("node {}: nksk_key_ans while registered: dropped",
                  FormatNodeId(n_id()));
    return;
  }
  // Any answer to our registration request id counts, also when nobody
  // waits for it any more: the KS holds us as registered from now on.
  if (own_.ntag.size() != kNtagSize ||
      h.request_id != RegistrationRequestId(own_.ntag)) {
    return Log("dropped", &h, "not our registration request");
  }
  auto keys = RegistrationKeys(own_.ntag, n_id(), FrameType::kNkskKeyAns);
  if (!keys.ok()) return;
  FrameHeader opened;
  auto ans = OpenBody<NkskKeyAns>(frame, *keys, &opened);
  if (!ans.ok()) return Log("dropped", &h, ans.status().message());
  ks_window_.Accept(h.counter);
  KsKeysBlob blob{std::move(ans->nksk), 1, ans->topic1, h.sender};
  // Step 3: NKSK, NKSKsign and TOPIC1 into NVRAM (one NV write).
  Status st = SaveKsKeys(tpm_, blob);
  if (!st.ok()) {
    // The KS answers again (we have not used the NKSK): a later request,
    // or the daemon's loop, tries again.
    return FinishRegistration(st.Annotate("storing NKSK in NV"));
  }
  own_.ks = std::move(blob);
  PrepareNksk();
  registration_.keep_trying = false;
  spdlog::info("node {}: registered with key server {}", FormatNodeId(n_id()),
               FormatNodeId(h.sender));
  FinishRegistration(OkStatus());
}

}  // namespace kgr
