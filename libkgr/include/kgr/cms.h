// CMS envelope of the AC <-> KS channel: sign with our certificate, then
// encrypt to the peer's certificate (OpenSSL CMS SignedData inside
// EnvelopedData). Both certificates are issued by the KED CA.
//
// Errors of DecryptAndVerify: INVALID_ARGUMENT for input that is not a CMS
// message or is over kMaxCmsMessage; UNAUTHENTICATED "verification failed"
// for every decryption, signature or chain failure (one generic message).
//
// CmsEndpoint is immutable after Load and thread-safe.
#ifndef KGR_CMS_H_
#define KGR_CMS_H_

#include <memory>
#include <span>
#include <string>
#include <utility>

#include "kgr/bytes.h"
#include "kgr/secret.h"
#include "kgr/status.h"

namespace kgr {

inline constexpr size_t kMaxCmsMessage = 8 * 1024 * 1024;

// Who signed a message, as verified against the CA.
struct CmsPeer {
  std::string common_name;
  std::string organizational_unit;
  Bytes certificate_der;
};

class CmsEndpoint {
 public:
  // PEM files. Checks that the certificate matches the key and chains to
  // the CA.
  static StatusOr<std::unique_ptr<CmsEndpoint>> Load(
      const std::string& ca_file, const std::string& cert_file,
      const std::string& key_file);
  ~CmsEndpoint();
  CmsEndpoint(const CmsEndpoint&) = delete;
  CmsEndpoint& operator=(const CmsEndpoint&) = delete;

  // SignedData (SHA-256, our certificate included) of `content`, then
  // EnvelopedData (AES-256-CBC, key agreement/transport to the recipient's
  // key) to `recipient_cert_der`. DER output.
  StatusOr<Bytes> SignAndEncrypt(std::span<const uint8_t> content,
                                 std::span<const uint8_t> recipient_cert_der) const;
  // Decrypts with our key, verifies the inner signature and that the
  // signer's certificate chains to our CA. Returns the content and signer.
  StatusOr<std::pair<SecretBytes, CmsPeer>> DecryptAndVerify(
      std::span<const uint8_t> message) const;

  const Bytes& certificate_der() const { return cert_der_; }
  const std::string& common_name() const { return common_name_; }

 private:
  CmsEndpoint() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
  Bytes cert_der_;
  std::string common_name_;
};

// Loads one PEM certificate file and returns its DER.
StatusOr<Bytes> LoadCertificateDer(const std::string& pem_file);

}  // namespace kgr

#endif  // KGR_CMS_H_
