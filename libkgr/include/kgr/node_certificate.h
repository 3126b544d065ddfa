// A node's broker client certificate: who may sign one (an issuing CA,
// usually an intermediate below the offline KED root), the node's own
// request (a new key and a PKCS#10 CSR) and what a certificate says about
// itself. docs/broker.md ("Intermediate CAs and renewal").
#ifndef KGR_NODE_CERTIFICATE_H_
#define KGR_NODE_CERTIFICATE_H_

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "kgr/bytes.h"
#include "kgr/secret.h"
#include "kgr/status.h"

namespace kgr {

// The node certificate's subject is always O=kgr, OU=kgr-node,
// CN=n<8 hex of N_ID>: the CN is the broker user name.
std::string NodeCommonName(uint32_t n_id);

// An issuing CA: its certificate and private key, read once. Certificates
// it signs carry the chain up to (not including) a self-signed root, so a
// broker that trusts only the root verifies them.
class CertificateAuthority {
 public:
  // PEM files; `cert_file` may hold the CA's certificate followed by the
  // intermediates above it. The key must match the first certificate, which
  // must be a CA (basicConstraints CA:TRUE) allowed to sign certificates.
  static StatusOr<CertificateAuthority> Load(const std::string& cert_file,
                                             const std::string& key_file);

  // Signs a node certificate for `n_id` on the public key of a CSR (DER),
  // valid from a minute ago until `seconds` from now. Refused
  // (PERMISSION_DENIED) if the CSR's signature does not verify, its subject is
  // not exactly the node's own (a node asking for another identity), or its key
  // is not EC P-256. Returns the PEM chain: the new certificate, then the CA's.
  StatusOr<std::string> SignNodeCsr(uint32_t n_id,
                                    std::span<const uint8_t> csr_der,
                                    int64_t seconds) const;

  // The PEM certificates of `cert_file` (the chain a leaf is sent with).
  const std::string& chain_pem() const;

  // A certificate this CA revokes: its serial (hex, as CertificateInfo) and
  // when it was revoked (seconds since 1970).
  struct Revoked {
    std::string serial_hex;
    int64_t revoked_at = 0;
  };
  // This CA's CRL (PEM, v2) listing `revoked`: thisUpdate now, nextUpdate
  // `valid_seconds` later, a CRL number of `crl_number`. INVALID_ARGUMENT
  // for a serial that is not hex.
  StatusOr<std::string> SignCrl(std::span<const Revoked> revoked,
                                int64_t valid_seconds,
                                uint64_t crl_number) const;

 private:
  struct Impl;
  std::shared_ptr<const Impl> impl_;
};

// A node's request for a new certificate: a fresh EC P-256 key and a CSR
// for the node's own subject, signed with it.
struct NodeCsr {
  Bytes csr_der;
  SecretBytes key_pem;  // PKCS#8 PEM
};
StatusOr<NodeCsr> MakeNodeCsr(uint32_t n_id);

// What a PEM certificate (the first of a chain) says about itself.
struct CertificateInfo {
  int64_t not_before = 0;  // seconds since 1970
  int64_t not_after = 0;
  std::string serial_hex;  // upper-case hex, as `openssl x509 -serial`
  std::string subject_cn;
};
StatusOr<CertificateInfo> ReadCertificateInfo(std::string_view pem);

// True if the private key (PEM) belongs to the first certificate of
// `chain_pem`.
StatusOr<bool> KeyMatchesCertificate(std::string_view chain_pem,
                                     const SecretBytes& key_pem);

}  // namespace kgr

#endif  // KGR_NODE_CERTIFICATE_H_
