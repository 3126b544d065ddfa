// Internal to libkgr/ks: the certificates the KS's node CA signed and the
// CRL it publishes for them (node_crl.cc; docs/operations.md, "Revoke a
// node"). A node revoked by the AC loses its KS-renewed broker certificates
// too: every serial the node CA signs is recorded, durably, before the
// certificate goes out, and the CRL lists the serials of revoked nodes.
//
// The record file (KeyServerOptions::node_certs_file), one line each:
//   cert <N_ID, 8 hex> <serial hex> <notAfter, s since 1970>
//   revoked <N_ID, 8 hex> <revocation time, s since 1970>
// appended and fdatasync'ed; a torn last line (a crash while appending: its
// certificate never went out) is dropped at load, with expired certificates.
#ifndef KGR_KS_NODE_CRL_H_
#define KGR_KS_NODE_CRL_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "kgr/node_certificate.h"
#include "kgr/status.h"

namespace kgr::ks {

struct Context;

struct NodeCrlState {
  struct Issued {
    uint32_t n_id = 0;
    std::string serial_hex;
    int64_t not_after = 0;
  };
  std::vector<Issued> issued;
  std::map<uint32_t, int64_t> revoked_at;  // the "revoked" lines
  bool loaded = false;
  uint64_t due_unix_ms = 0;  // next publication (0: at the next Tick)
  uint64_t number = 0;       // the last CRL's number
};

// The node CA's CRL lives this long (nextUpdate) and is signed again daily,
// so it never expires at the broker while the KS runs.
inline constexpr int64_t kNodeCrlSeconds = 30 * 86400;
inline constexpr uint64_t kNodeCrlRefreshMs = 86'400'000;
inline constexpr uint64_t kNodeCrlRetryMs = 60'000;

// Appends the certificate to the record file (synced). A certificate that
// is not recorded must not be sent: it could not be revoked.
Status RecordIssuedCertificate(Context& ctx, uint32_t n_id,
                               const CertificateInfo& info);
// Signs the node CA's CRL (every unexpired serial issued to a node now
// revoked), writes it to node_crl_file atomically and calls
// node_crl_written (the hook). OK without a node CA or a CRL file.
Status PublishNodeCrl(Context& ctx);
// From Tick: publishes at start, daily, and a minute after a failure.
void RefreshNodeCrl(Context& ctx);

}  // namespace kgr::ks

#endif  // KGR_KS_NODE_CRL_H_
