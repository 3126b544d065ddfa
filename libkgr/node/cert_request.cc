// N certificate renewal (docs/protocol.md section 11): the CSR goes to the
// KS under the NKSK, the signed chain comes back on TOPIC2.
#include <spdlog/spdlog.h>

#include "kgr/node_client.h"

namespace kgr {

void NodeClient::RequestCertificate(Bytes csr_der, CertCallback done,
                                    uint64_t timeout_ms) {
  if (!registered()) return done(FailedPreconditionError("not registered"));
  if (csr_der.empty() || csr_der.size() > kMaxCsrSize) {
    return done(InvalidArgumentError("CSR size out of bounds"));
  }
  for (const auto& [id, p] : pending_) {
    if (std::holds_alternative<CertRequest>(p.request)) {
      return done(AbortedError("a certificate request is under way"));
    }
  }
  uint64_t id = NewKeyRequestId();
  Pending p{.request = CertRequest{std::move(csr_der), std::move(done)}};
  Schedule(p, timeout_ms);
  auto [it, inserted] = pending_.emplace(id, std::move(p));
  Status st = Transmit(id, it->second);
  if (!st.ok()) Finish(id, st);
}

void NodeClient::OnCertAns(const FrameHeader& h, CertRenewAns m) {
  auto it = pending_.find(h.request_id);
  if (it == pending_.end() ||
      !std::holds_alternative<CertRequest>(it->second.request)) {
    return Log("dropped", &h, "no certificate request under way");
  }
  CertCallback done = std::move(std::get<CertRequest>(it->second.request).done);
  pending_.erase(it);
  spdlog::info("node {}: the key server signed a new broker certificate",
               FormatNodeId(n_id()));
  if (done) done(std::move(m.chain_pem));
}

}  // namespace kgr
