// An issuing CA signs node certificates on a CSR's key (OpenSSL 3): the
// AC at authorization, the KS at renewal (docs/broker.md).
#include <openssl/bn.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cstdio>
#include <memory>

#include "crypto/openssl_ptr.h"
#include "kgr/crypto.h"
#include "kgr/filesystem.h"
#include "kgr/node_certificate.h"

namespace kgr {
namespace {

using openssl::BioPtr;
using openssl::Free;
using openssl::KeyPtr;
using openssl::ReqPtr;
using openssl::X509Ptr;
using ExtPtr =
    std::unique_ptr<X509_EXTENSION, Free<X509_EXTENSION, X509_EXTENSION_free>>;
using BnPtr = std::unique_ptr<BIGNUM, Free<BIGNUM, BN_free>>;
using CrlPtr = std::unique_ptr<X509_CRL, Free<X509_CRL, X509_CRL_free>>;
using RevokedPtr =
    std::unique_ptr<X509_REVOKED, Free<X509_REVOKED, X509_REVOKED_free>>;
using TimePtr = std::unique_ptr<ASN1_TIME, Free<ASN1_TIME, ASN1_TIME_free>>;
using IntPtr =
    std::unique_ptr<ASN1_INTEGER, Free<ASN1_INTEGER, ASN1_INTEGER_free>>;

bool AddExt(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  ExtPtr ext(X509V3_EXT_conf_nid(nullptr, &ctx, nid, value));
  return ext && X509_add_ext(cert, ext.get(), -1) == 1;
}

StatusOr<std::string> ReadFileText(const std::string& path) {
  auto bytes = DefaultFileSystem()->ReadFile(path);
  if (!bytes.ok()) return NotFoundError("cannot read " + path);
  return std::string(bytes->begin(), bytes->end());
}

// The subject must be exactly O=kgr, OU=kgr-node, CN=n<id>.
bool IsNodeSubject(X509_NAME* name, uint32_t n_id) {
  if (X509_NAME_entry_count(name) != 3) return false;
  const std::string cn = NodeCommonName(n_id);
  const std::pair<int, const char*> want[] = {
      {NID_organizationName, "kgr"},
      {NID_organizationalUnitName, "kgr-node"},
      {NID_commonName, cn.c_str()}};
  for (int i = 0; i < 3; ++i) {
    X509_NAME_ENTRY* e = X509_NAME_get_entry(name, i);
    if (OBJ_obj2nid(X509_NAME_ENTRY_get_object(e)) != want[i].first) {
      return false;
    }
    ASN1_STRING* v = X509_NAME_ENTRY_get_data(e);
    std::string_view got(
        reinterpret_cast<const char*>(ASN1_STRING_get0_data(v)),
        static_cast<size_t>(ASN1_STRING_length(v)));
    if (got != want[i].second) return false;
  }
  return true;
}

bool IsP256(EVP_PKEY* key) {
  char group[32] = {};
  size_t len = 0;
  return EVP_PKEY_is_a(key, "EC") &&
         EVP_PKEY_get_group_name(key, group, sizeof group, &len) == 1 &&
         std::string_view(group, len) == "prime256v1";
}

// A serial as `openssl x509 -serial` prints it (CertificateInfo::serial_hex).
StatusOr<IntPtr> SerialFromHex(const std::string& hex) {
  const bool is_hex =
      !hex.empty() && hex.size() <= 40 &&
      hex.find_first_not_of("0123456789abcdefABCDEF") == std::string::npos;
  BIGNUM* raw = nullptr;
  if (!is_hex || BN_hex2bn(&raw, hex.c_str()) != static_cast<int>(hex.size())) {
    BN_free(raw);
    return InvalidArgumentError("serial '" + hex + "' is not hex");
  }
  BnPtr bn(raw);
  IntPtr serial(BN_to_ASN1_INTEGER(bn.get(), nullptr));
  if (!serial) return InternalError("serial conversion failed");
  return serial;
}

bool AddCrlEntry(X509_CRL* crl, ASN1_INTEGER* serial, time_t when) {
  TimePtr date(ASN1_TIME_set(nullptr, when));
  RevokedPtr entry(X509_REVOKED_new());
  if (!date || !entry ||
      X509_REVOKED_set_serialNumber(entry.get(), serial) != 1 ||
      X509_REVOKED_set_revocationDate(entry.get(), date.get()) != 1 ||
      X509_CRL_add0_revoked(crl, entry.get()) != 1) {
    return false;
  }
  entry.release();  // owned by the CRL now
  return true;
}

// The CRL number and the issuer's key identifier (RFC 5280 5.2.1, 5.2.3).
bool AddCrlExtensions(X509_CRL* crl, X509* issuer, uint64_t number) {
  IntPtr n(ASN1_INTEGER_new());
  if (!n || ASN1_INTEGER_set_uint64(n.get(), number) != 1 ||
      X509_CRL_add1_ext_i2d(crl, NID_crl_number, n.get(), 0, 0) != 1) {
    return false;
  }
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, nullptr, nullptr, crl, 0);
  ExtPtr aki(X509V3_EXT_conf_nid(nullptr, &ctx, NID_authority_key_identifier,
                                 "keyid"));
  return aki && X509_CRL_add_ext(crl, aki.get(), -1) == 1;
}

std::string MemText(BIO* bio) {
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<size_t>(n));
}

// notBefore this far back: a node whose clock is a little behind accepts
// its new certificate (the renewal point is a share of the whole validity).
constexpr long kBackdateSeconds = 60;

}  // namespace

std::string NodeCommonName(uint32_t n_id) {
  char cn[10];
  std::snprintf(cn, sizeof cn, "n%08x", n_id);
  return cn;
}

struct CertificateAuthority::Impl {
  X509Ptr cert;
  KeyPtr key;
  std::string chain_pem;  // cert_file's certificates, self-signed ones out
};

StatusOr<CertificateAuthority> CertificateAuthority::Load(
    const std::string& cert_file, const std::string& key_file) {
  KGR_ASSIGN_OR_RETURN(std::string certs, ReadFileText(cert_file));
  KGR_ASSIGN_OR_RETURN(std::string key_text, ReadFileText(key_file));
  auto impl = std::make_shared<Impl>();
  BioPtr in(BIO_new_mem_buf(certs.data(), static_cast<int>(certs.size())));
  for (X509* c; in && (c = PEM_read_bio_X509(in.get(), nullptr, nullptr,
                                             nullptr)) != nullptr;) {
    X509Ptr owned(c);
    // A self-signed root is the broker's trust anchor, never sent.
    if (X509_check_issued(c, c) != X509_V_OK) {
      BioPtr out(BIO_new(BIO_s_mem()));
      if (!out || PEM_write_bio_X509(out.get(), c) != 1) {
        return InternalError("PEM encoding failed");
      }
      impl->chain_pem += MemText(out.get());
    }
    if (!impl->cert) impl->cert = std::move(owned);
  }
  if (!impl->cert) {
    return InvalidArgumentError(cert_file + ": not a PEM certificate");
  }
  BioPtr kin(
      BIO_new_mem_buf(key_text.data(), static_cast<int>(key_text.size())));
  impl->key.reset(
      PEM_read_bio_PrivateKey(kin.get(), nullptr, nullptr, nullptr));
  OPENSSL_cleanse(key_text.data(), key_text.size());
  if (!impl->key) return InvalidArgumentError(key_file + ": not a PEM key");
  if (X509_check_private_key(impl->cert.get(), impl->key.get()) != 1) {
    return InvalidArgumentError(key_file + " does not match " + cert_file);
  }
  if (X509_check_ca(impl->cert.get()) == 0 ||
      (X509_get_key_usage(impl->cert.get()) & KU_KEY_CERT_SIGN) == 0) {
    return InvalidArgumentError(cert_file +
                                " is not a CA that signs "
                                "certificates");
  }
  CertificateAuthority ca;
  ca.impl_ = std::move(impl);
  return ca;
}

const std::string& CertificateAuthority::chain_pem() const {
  return impl_->chain_pem;
}

StatusOr<std::string> CertificateAuthority::SignNodeCsr(
    uint32_t n_id, std::span<const uint8_t> csr_der, int64_t seconds) const {
  const unsigned char* p = csr_der.data();
  ReqPtr req(d2i_X509_REQ(nullptr, &p, static_cast<long>(csr_der.size())));
  if (!req || p != csr_der.data() + csr_der.size()) {
    return InvalidArgumentError("not a DER certificate request");
  }
  EVP_PKEY* pub = X509_REQ_get0_pubkey(req.get());
  if (pub == nullptr || X509_REQ_verify(req.get(), pub) != 1) {
    return PermissionDeniedError("the CSR's signature does not verify");
  }
  if (!IsNodeSubject(X509_REQ_get_subject_name(req.get()), n_id)) {
    return PermissionDeniedError(
        "the CSR's subject is not O=kgr/OU=kgr-node/"
        "CN=" +
        NodeCommonName(n_id));
  }
  if (!IsP256(pub)) return PermissionDeniedError("the CSR's key is not P-256");
  if (seconds < 60) return InvalidArgumentError("lifetime below 60 s");
  X509* ca = impl_->cert.get();
  X509Ptr cert(X509_new());
  uint8_t serial[16];
  KGR_RETURN_IF_ERROR(RandomBytes(serial));
  serial[0] &= 0x7f;
  serial[0] |= 0x01;  // 16 bytes, positive
  BnPtr bn(BN_bin2bn(serial, sizeof serial, nullptr));
  bool ok =
      cert && bn &&
      BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(cert.get())) &&
      X509_set_version(cert.get(), 2) == 1 &&
      X509_gmtime_adj(X509_getm_notBefore(cert.get()), -kBackdateSeconds) &&
      X509_gmtime_adj(X509_getm_notAfter(cert.get()),
                      static_cast<long>(seconds)) &&
      X509_set_subject_name(cert.get(), X509_REQ_get_subject_name(req.get())) ==
          1 &&
      X509_set_issuer_name(cert.get(), X509_get_subject_name(ca)) == 1 &&
      X509_set_pubkey(cert.get(), pub) == 1 &&
      AddExt(cert.get(), ca, NID_basic_constraints, "critical,CA:FALSE") &&
      AddExt(cert.get(), ca, NID_key_usage, "critical,digitalSignature") &&
      AddExt(cert.get(), ca, NID_ext_key_usage, "clientAuth") &&
      AddExt(cert.get(), ca, NID_subject_key_identifier, "hash") &&
      AddExt(cert.get(), ca, NID_authority_key_identifier, "keyid") &&
      X509_sign(cert.get(), impl_->key.get(), EVP_sha256()) > 0;
  if (!ok) return InternalError("signing the node certificate failed");
  BioPtr out(BIO_new(BIO_s_mem()));
  if (!out || PEM_write_bio_X509(out.get(), cert.get()) != 1) {
    return InternalError("PEM encoding failed");
  }
  return MemText(out.get()) + impl_->chain_pem;
}

StatusOr<std::string> CertificateAuthority::SignCrl(
    std::span<const Revoked> revoked, int64_t valid_seconds,
    uint64_t crl_number) const {
  X509* ca = impl_->cert.get();
  CrlPtr crl(X509_CRL_new());
  TimePtr now(X509_gmtime_adj(nullptr, 0));
  TimePtr next(X509_gmtime_adj(nullptr, static_cast<long>(valid_seconds)));
  if (!crl || !now || !next || X509_CRL_set_version(crl.get(), 1) != 1 ||
      X509_CRL_set_issuer_name(crl.get(), X509_get_subject_name(ca)) != 1 ||
      X509_CRL_set1_lastUpdate(crl.get(), now.get()) != 1 ||
      X509_CRL_set1_nextUpdate(crl.get(), next.get()) != 1) {
    return InternalError("CRL setup failed");
  }
  for (const Revoked& r : revoked) {
    KGR_ASSIGN_OR_RETURN(IntPtr serial, SerialFromHex(r.serial_hex));
    if (!AddCrlEntry(crl.get(), serial.get(),
                     static_cast<time_t>(r.revoked_at))) {
      return InternalError("CRL entry failed");
    }
  }
  if (!AddCrlExtensions(crl.get(), ca, crl_number) ||
      X509_CRL_sort(crl.get()) != 1 ||
      X509_CRL_sign(crl.get(), impl_->key.get(), EVP_sha256()) <= 0) {
    return InternalError("CRL signing failed");
  }
  BioPtr out(BIO_new(BIO_s_mem()));
  if (!out || PEM_write_bio_X509_CRL(out.get(), crl.get()) != 1) {
    return InternalError("CRL encoding failed");
  }
  return MemText(out.get());
}

}  // namespace kgr
