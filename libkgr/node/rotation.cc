// N NKSK rotation (docs/protocol.md section 9).
#include <spdlog/spdlog.h>

#include <algorithm>

#include "kgr/node_client.h"

namespace kgr {

void NodeClient::RotateNksk(DoneCallback done, uint64_t timeout_ms) {
  if (!registered()) return done(FailedPreconditionError("not registered"));
  for (const auto& [id, p] : pending_) {
    if (std::holds_alternative<RotationRequest>(p.request)) {
      return done(AbortedError("an NKSK rotation is under way"));
    }
  }
  // Growing like key request ids: the KS refuses a late copy of an older
  // rotation request (docs/protocol.md section 9).
  uint64_t id = NewKeyRequestId();
  auto eph = GenerateX25519();
  if (!eph.ok()) return done(InternalError("key generation"));
  Pending p{.request = RotationRequest{std::move(*eph), std::move(done)}};
  Schedule(p, timeout_ms);
  auto [it, inserted] = pending_.emplace(id, std::move(p));
  Status st = Transmit(id, it->second);
  if (!st.ok()) Finish(id, st);
}

void NodeClient::OnRotAns(const FrameHeader& h, const NkskRotAns& m) {
  const RotationRequest* rotation = Find<RotationRequest>(h.request_id);
  if (rotation == nullptr) {
    return Log("dropped", &h, "no NKSK rotation under way");
  }
  if (m.version != own_.ks->version + 1) {
    return Log("dropped", &h, "unexpected NKSK version");
  }
  const X25519KeyPair& eph = rotation->ephemeral;
  auto shared = X25519SharedSecret(eph.private_key, m.ks_public);
  if (!shared.ok()) return Finish(h.request_id, shared.status());
  auto keys =
      RotationKeys(*shared, n_id(), m.version, eph.public_key, m.ks_public);
  if (!keys.ok()) return Finish(h.request_id, keys.status());
  KsKeysBlob blob{std::move(*keys), m.version, own_.ks->ks_topic1,
                  own_.ks->ks_n_id};
  // One NV write per rotation.
  Status st = SaveKsKeys(tpm_, blob);
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

}  // namespace kgr
