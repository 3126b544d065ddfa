// cert_renew_req: the KS signs a node's new broker certificate with the
// issuing CA the AC delegated to it, for the node's own identity only
// (docs/protocol.md section 11).
#include <spdlog/spdlog.h>

#include "kgr/key_server.h"
#include "kgr/node_certificate.h"
#include "ks/context.h"
#include "ks/internal.h"

namespace kgr::ks {

void HandleCertRenewal(Context& ctx, const FrameHeader& h, const NodeDesc& node,
                       const CertRenewReq& req) {
  // A retransmission (our answer was lost) gets the same certificate again,
  // not a second one.
  auto same = ctx.cert_renewals.find(node.n_id);
  if (same != ctx.cert_renewals.end() &&
      same->second.request_id == h.request_id &&
      same->second.csr_der == req.csr_der) {
    Status st = SendToNode(ctx, node, h.request_id, 0,
                           CertRenewAns{same->second.chain_pem});
    if (!st.ok())
      spdlog::warn("ks: cert_renew_ans not sent: {}", st.ToString());
    return;
  }
  if (!ctx.options.node_ca.has_value()) {
    spdlog::warn(
        "ks: node {} asks for a certificate, but no node CA is "
        "configured (node_ca)",
        FormatNodeId(node.n_id));
    return SendError(ctx, h, node, KsErrorCode::kCertificateRefused);
  }
  // The subject must be the sender's own: the frame's MAC proved who it is.
  auto chain = ctx.options.node_ca->SignNodeCsr(node.n_id, req.csr_der,
                                                ctx.options.node_cert_seconds);
  if (!chain.ok()) {
    spdlog::warn("ks: node {}: certificate request refused: {}",
                 FormatNodeId(node.n_id), chain.status().message());
    return SendError(ctx, h, node, KsErrorCode::kCertificateRefused);
  }
  // Recorded (synced) before it goes out, so that a revocation of the node
  // can list it in the node CRL (node_crl.cc).
  auto info = ReadCertificateInfo(*chain);
  Status recorded = info.ok() ? RecordIssuedCertificate(ctx, node.n_id, *info)
                              : info.status();
  if (!recorded.ok()) {
    spdlog::error(
        "ks: node {}: certificate not recorded, so not sent (it could not "
        "be revoked): {}",
        FormatNodeId(node.n_id), recorded.ToString());
    return SendError(ctx, h, node, KsErrorCode::kCertificateRefused);
  }
  spdlog::info("ks: node {} gets a new broker certificate (serial {}, {} s)",
               FormatNodeId(node.n_id), info->serial_hex,
               ctx.options.node_cert_seconds);
  ++ctx.stats.certificates_issued;
  ctx.cert_renewals[node.n_id] = {h.request_id, req.csr_der, *chain};
  Status st = SendToNode(ctx, node, h.request_id, 0, CertRenewAns{*chain});
  if (!st.ok()) spdlog::warn("ks: cert_renew_ans not sent: {}", st.ToString());
}

}  // namespace kgr::ks
