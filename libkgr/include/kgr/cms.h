// CMS envelope of the AC <-> KS channel: sign with our certificate, then
// encrypt to the peer's certificate, so that the broker sees neither the
// content (it may carry an NTAG) nor can forge it. Both certificates are
// issued by the KED CA (ECDSA P-256).
//
// Wire format (DER, RFC 5652 / RFC 5083 / RFC 5753):
//
//   message   := ContentInfo(id-ct-authEnvelopedData,
//                  AuthEnvelopedData(
//                    one KeyAgreeRecipientInfo (ephemeral-static ECDH,
//                      dhSinglePass-stdDH-sha256kdf-scheme, id-aes256-wrap)
//                      naming the recipient certificate,
//                    AES-256-GCM(signed)))
//   signed    := ContentInfo(id-signedData,
//                  SignedData(SHA-256, one SignerInfo (ecdsa-with-SHA256,
//                    signed attributes), the signer's certificate,
//                    eContent = content))
//
// DecryptAndVerify accepts nothing else: no other outer type (e.g. CBC
// EnvelopedData), no unsigned or detached inner content, exactly one signer,
// whose certificate must be included and chain to our CA (any purpose: KED
// certificates carry clientAuth, not S/MIME usages) and be valid now.
//
// Errors of DecryptAndVerify: INVALID_ARGUMENT for input that is not one
// DER CMS ContentInfo or is over kMaxCmsMessage; UNAUTHENTICATED
// "verification failed" (kVerificationFailed) for every decryption,
// signature, chain or format failure after that, whatever the cause (details
// are logged at debug level, never content).
//
// The CMS layer authenticates "someone holding a certificate of our CA";
// callers must still check the role (CmsPeer::organizational_unit, e.g.
// "kgr-ac"), since nodes hold certificates of the same CA, and must protect
// against replay and forwarding themselves (counters, recipients named in
// the content): a signed message can be replayed or re-encrypted to another
// holder of a certificate by its legitimate recipient.
//
// CmsEndpoint is immutable after Load and thread-safe. Its private key
// never leaves OpenSSL objects.
#ifndef KGR_CMS_H_
#define KGR_CMS_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include "kgr/bytes.h"
#include "kgr/secret.h"
#include "kgr/status.h"

namespace kgr {

// Largest message DecryptAndVerify looks at.
inline constexpr size_t kMaxCmsMessage = 8 * 1024 * 1024;
// Largest content SignAndEncrypt takes (its output then stays under
// kMaxCmsMessage).
inline constexpr size_t kMaxCmsContent = kMaxCmsMessage - 64 * 1024;

// Who signed a message, as verified against the CA.
struct CmsPeer {
  std::string common_name;          // subject CN, e.g. "ac"
  std::string organizational_unit;  // subject OU, e.g. "kgr-ac"
  Bytes certificate_der;            // the signer's certificate
};

class CmsEndpoint {
 public:
  // Reads PEM files: the CA certificate (the first one in `ca_file`), our
  // certificate, and our EC private key (unencrypted PEM; an encrypted key
  // is refused, never prompted for). Checks that the certificate matches
  // the key, has exactly one CN, and chains to the CA now.
  // NOT_FOUND if a file cannot be read, INVALID_ARGUMENT otherwise.
  static StatusOr<std::unique_ptr<CmsEndpoint>> Load(
      const std::string& ca_file, const std::string& cert_file,
      const std::string& key_file);
  ~CmsEndpoint();
  CmsEndpoint(const CmsEndpoint&) = delete;
  CmsEndpoint& operator=(const CmsEndpoint&) = delete;

  // Signs `content` and encrypts the result to `recipient_cert_der` (see
  // the format above). The recipient certificate must be one DER X.509
  // certificate with an EC key that chains to our CA (INVALID_ARGUMENT
  // otherwise), so that content is never encrypted to a stranger.
  // INVALID_ARGUMENT if content is over kMaxCmsContent.
  StatusOr<Bytes> SignAndEncrypt(
      std::span<const uint8_t> content,
      std::span<const uint8_t> recipient_cert_der) const;

  // Decrypts with our key, verifies the inner signature and that the
  // signer's certificate chains to our CA. Returns the content and the
  // verified signer. Errors: see the top of this file.
  StatusOr<std::pair<SecretBytes, CmsPeer>> DecryptAndVerify(
      std::span<const uint8_t> message) const;

  // Signs `data` with our key: ECDSA with SHA-256; returns the DER
  // ECDSA-Sig-Value. For the files the AC hands out (credentials.h), which
  // carry our certificate next to the signature (see VerifyDetached).
  StatusOr<Bytes> SignDetached(std::span<const uint8_t> data) const;

  const Bytes& certificate_der() const { return cert_der_; }
  const std::string& common_name() const { return common_name_; }

 private:
  CmsEndpoint();
  struct Impl;
  std::unique_ptr<Impl> impl_;
  Bytes cert_der_;
  std::string common_name_;
};

// Verifies a SignDetached signature: `signature` must be a DER ECDSA
// signature (SHA-256) over `data` by the EC key of `signer_cert_der` (one DER
// certificate), which must chain to the CA certificate `ca_pem` (the first
// PEM certificate in it; a CA). Validity times are NOT checked: a device may
// have no clock yet when it reads such a file. Returns the verified signer;
// callers check its role (organizational_unit). INVALID_ARGUMENT if `ca_pem`
// holds no CA certificate; UNAUTHENTICATED(kVerificationFailed) for anything
// else (details at debug level).
StatusOr<CmsPeer> VerifyDetached(std::span<const uint8_t> data,
                                 std::span<const uint8_t> signature,
                                 std::span<const uint8_t> signer_cert_der,
                                 std::string_view ca_pem);

// Loads the first PEM certificate of `pem_file` and returns its DER.
// NOT_FOUND if unreadable, INVALID_ARGUMENT if it holds no certificate.
StatusOr<Bytes> LoadCertificateDer(const std::string& pem_file);

}  // namespace kgr

#endif  // KGR_CMS_H_
