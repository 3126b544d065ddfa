// The node's side of a certificate: a new key and a CSR for its own
// subject, and what an issued certificate says (OpenSSL 3).
#include <openssl/bn.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <memory>

#include "crypto/openssl_ptr.h"
#include "kgr/node_certificate.h"

namespace kgr {
namespace {

using openssl::BioPtr;
using openssl::Free;
using openssl::KeyPtr;
using openssl::ReqPtr;
using openssl::X509Ptr;

bool AddName(X509_NAME* name, const char* field, const std::string& value) {
  return X509_NAME_add_entry_by_txt(
             name, field, MBSTRING_ASC,
             reinterpret_cast<const unsigned char*>(value.c_str()), -1, -1,
             0) == 1;
}

StatusOr<X509Ptr> FirstCertificate(std::string_view pem) {
  BioPtr in(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  X509Ptr cert(in ? PEM_read_bio_X509(in.get(), nullptr, nullptr, nullptr)
                  : nullptr);
  if (!cert) return InvalidArgumentError("not a PEM certificate");
  return cert;
}

StatusOr<int64_t> SecondsSinceEpoch(const ASN1_TIME* t) {
  struct tm tm {};
  if (ASN1_TIME_to_tm(t, &tm) != 1) {
    return InvalidArgumentError("bad certificate time");
  }
  return static_cast<int64_t>(timegm(&tm));
}

}  // namespace

StatusOr<NodeCsr> MakeNodeCsr(uint32_t n_id) {
  KeyPtr key(EVP_EC_gen("P-256"));
  ReqPtr req(X509_REQ_new());
  if (!key || !req) return InternalError("key generation failed");
  X509_NAME* name = X509_REQ_get_subject_name(req.get());
  if (X509_REQ_set_version(req.get(), 0) != 1 || !AddName(name, "O", "kgr") ||
      !AddName(name, "OU", "kgr-node") ||
      !AddName(name, "CN", NodeCommonName(n_id)) ||
      X509_REQ_set_pubkey(req.get(), key.get()) != 1 ||
      X509_REQ_sign(req.get(), key.get(), EVP_sha256()) <= 0) {
    return InternalError("making the CSR failed");
  }
  NodeCsr out;
  int len = i2d_X509_REQ(req.get(), nullptr);
  if (len <= 0) return InternalError("CSR encoding failed");
  out.csr_der.resize(static_cast<size_t>(len));
  unsigned char* p = out.csr_der.data();
  i2d_X509_REQ(req.get(), &p);
  BioPtr kb(BIO_new(BIO_s_mem()));
  if (!kb || PEM_write_bio_PrivateKey(kb.get(), key.get(), nullptr, nullptr, 0,
                                      nullptr, nullptr) != 1) {
    return InternalError("key encoding failed");
  }
  char* data = nullptr;
  long n = BIO_get_mem_data(kb.get(), &data);
  out.key_pem = SecretBytes(std::span<const uint8_t>(
      reinterpret_cast<const uint8_t*>(data), static_cast<size_t>(n)));
  OPENSSL_cleanse(data, static_cast<size_t>(n));
  return out;
}

StatusOr<CertificateInfo> ReadCertificateInfo(std::string_view pem) {
  KGR_ASSIGN_OR_RETURN(X509Ptr cert, FirstCertificate(pem));
  CertificateInfo info;
  KGR_ASSIGN_OR_RETURN(info.not_before,
                       SecondsSinceEpoch(X509_get0_notBefore(cert.get())));
  KGR_ASSIGN_OR_RETURN(info.not_after,
                       SecondsSinceEpoch(X509_get0_notAfter(cert.get())));
  BIGNUM* bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert.get()), nullptr);
  char* hex = bn ? BN_bn2hex(bn) : nullptr;
  BN_free(bn);
  if (hex == nullptr) return InternalError("serial");
  info.serial_hex = hex;
  OPENSSL_free(hex);
  char cn[128] = {};
  int len = X509_NAME_get_text_by_NID(X509_get_subject_name(cert.get()),
                                      NID_commonName, cn, sizeof cn);
  if (len > 0) info.subject_cn.assign(cn, static_cast<size_t>(len));
  return info;
}

StatusOr<bool> KeyMatchesCertificate(std::string_view chain_pem,
                                     const SecretBytes& key_pem) {
  KGR_ASSIGN_OR_RETURN(X509Ptr cert, FirstCertificate(chain_pem));
  BioPtr in(BIO_new_mem_buf(key_pem.data(), static_cast<int>(key_pem.size())));
  KeyPtr key(in ? PEM_read_bio_PrivateKey(in.get(), nullptr, nullptr, nullptr)
                : nullptr);
  if (!key) return InvalidArgumentError("not a PEM private key");
  return X509_check_private_key(cert.get(), key.get()) == 1;
}

}  // namespace kgr
