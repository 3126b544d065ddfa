// The node daemon renews its broker certificate by itself (docs/operations.md,
// "Certificate renewal"): once the share of its validity set by
// cert_renew_at_percent has passed, a new key and a CSR go to the KS over
// the authenticated KGR channel; the signed chain is checked, installed
// atomically in <state_dir>/tls and the MQTT connection made again with it,
// without a restart. Internal to libkgr/daemon/.
#ifndef KGR_DAEMON_NODE_CERT_RENEWAL_H_
#define KGR_DAEMON_NODE_CERT_RENEWAL_H_

#include <cstdint>
#include <string>

#include "kgr/node_client.h"
#include "kgr/secret.h"
#include "kgr/status.h"
#include "kgr/transport.h"

namespace kgr {

// Finishes an installation a crash interrupted (cert.pem.new/key.pem.new in
// `tls_dir`): a complete new pair goes in, a lone new certificate that does
// not match key.pem is dropped. Call before the transport is opened.
Status RecoverNodeTlsFiles(const std::string& tls_dir);

// Writes chain and key as cert.pem/key.pem: both staged (.new, synced),
// then key then certificate renamed into place.
Status InstallNodeTlsFiles(const std::string& tls_dir,
                           const std::string& chain_pem,
                           const SecretBytes& key_pem);

class NodeCertRenewal {
 public:
  // `renew_at_percent` 0: never renews.
  NodeCertRenewal(std::string tls_dir, int renew_at_percent, NodeClient& client,
                  Transport& transport);
  // On the loop's thread, about once a second: starts a renewal when due.
  void Tick(int64_t now_unix_s, uint64_t now_ms);

 private:
  void Start(uint64_t now_ms);
  void OnChain(StatusOr<std::string> chain);
  Status Install(const std::string& chain);
  // When the installed certificate is due for renewal (0: unknown).
  void ReadDue();

  const std::string tls_dir_;
  const int renew_at_percent_;
  NodeClient& client_;
  Transport& transport_;
  int64_t due_s_ = 0;
  bool in_flight_ = false;
  uint64_t next_try_ms_ = 0;
  uint64_t backoff_ms_ = 5000;
  SecretBytes key_pem_;  // the new key while its CSR is out
};

}  // namespace kgr

#endif  // KGR_DAEMON_NODE_CERT_RENEWAL_H_
