// The CA's revocation list and a node's first broker certificate (OpenSSL 3).
#include "kgr/node_certificate.h"

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cstdio>
#include <memory>

#include "crypto/openssl_ptr.h"
#include "kgr/ac_client.h"
#include "kgr/credentials.h"

namespace kgr {
namespace {

template <typename T, void (*F)(T*)>
using Deleter = openssl::Free<T, F>;
using openssl::BioPtr;
using openssl::KeyPtr;
using openssl::X509Ptr;
using CrlPtr = std::unique_ptr<X509_CRL, Deleter<X509_CRL, X509_CRL_free>>;
using RevokedPtr =
    std::unique_ptr<X509_REVOKED, Deleter<X509_REVOKED, X509_REVOKED_free>>;
using TimePtr = std::unique_ptr<ASN1_TIME, Deleter<ASN1_TIME, ASN1_TIME_free>>;

void FileClose(FILE* f) { std::fclose(f); }
using FilePtr = std::unique_ptr<FILE, Deleter<FILE, FileClose>>;

StatusOr<X509Ptr> ReadCert(const std::string& path) {
  FilePtr f(std::fopen(path.c_str(), "r"));
  if (!f) return NotFoundError("cannot read certificate " + path);
  X509Ptr c(PEM_read_X509(f.get(), nullptr, nullptr, nullptr));
  if (!c) return InvalidArgumentError(path + ": not a PEM certificate");
  return c;
}

StatusOr<KeyPtr> ReadKey(const std::string& path) {
  FilePtr f(std::fopen(path.c_str(), "r"));
  if (!f) return NotFoundError("cannot read key " + path);
  KeyPtr k(PEM_read_PrivateKey(f.get(), nullptr, nullptr, nullptr));
  if (!k) return InvalidArgumentError(path + ": not a PEM private key");
  return k;
}

}  // namespace

Status UpdateCrl(const std::string& ca_cert_file,
                 const std::string& ca_key_file, const std::string& crl_file,
                 const std::string& revoke_cert_file, int days) {
  KGR_ASSIGN_OR_RETURN(X509Ptr ca, ReadCert(ca_cert_file));
  KGR_ASSIGN_OR_RETURN(KeyPtr ca_key, ReadKey(ca_key_file));
  if (X509_check_private_key(ca.get(), ca_key.get()) != 1) {
    return InvalidArgumentError("CA key does not match the CA certificate");
  }
  CrlPtr crl(X509_CRL_new());
  if (!crl || X509_CRL_set_version(crl.get(), 1) != 1 ||
      X509_CRL_set_issuer_name(crl.get(), X509_get_subject_name(ca.get())) !=
          1) {
    return InternalError("CRL setup failed");
  }
  // Keep what the current list revokes (it must be our CA's).
  if (FilePtr f(std::fopen(crl_file.c_str(), "r")); f) {
    CrlPtr old(PEM_read_X509_CRL(f.get(), nullptr, nullptr, nullptr));
    if (!old || X509_CRL_verify(old.get(), X509_get0_pubkey(ca.get())) != 1) {
      return DataLossError(crl_file + " is not a CRL signed by this CA");
    }
    STACK_OF(X509_REVOKED)* entries = X509_CRL_get_REVOKED(old.get());
    for (int i = 0; i < sk_X509_REVOKED_num(entries); ++i) {
      X509_REVOKED* e = X509_REVOKED_dup(sk_X509_REVOKED_value(entries, i));
      if (!e || X509_CRL_add0_revoked(crl.get(), e) != 1) {
        X509_REVOKED_free(e);
        return InternalError("CRL copy failed");
      }
    }
  }
  TimePtr now(ASN1_TIME_new());
  TimePtr next(ASN1_TIME_new());
  if (!now || !next || !X509_gmtime_adj(now.get(), 0) ||
      !X509_gmtime_adj(next.get(), static_cast<long>(days) * 86400)) {
    return InternalError("time");
  }
  if (!revoke_cert_file.empty()) {
    KGR_ASSIGN_OR_RETURN(X509Ptr cert, ReadCert(revoke_cert_file));
    RevokedPtr r(X509_REVOKED_new());
    if (!r ||
        X509_REVOKED_set_serialNumber(r.get(),
                                      X509_get_serialNumber(cert.get())) != 1 ||
        X509_REVOKED_set_revocationDate(r.get(), now.get()) != 1 ||
        X509_CRL_add0_revoked(crl.get(), r.get()) != 1) {
      return InternalError("CRL entry failed");
    }
    r.release();  // owned by the CRL now
  }
  if (X509_CRL_set1_lastUpdate(crl.get(), now.get()) != 1 ||
      X509_CRL_set1_nextUpdate(crl.get(), next.get()) != 1 ||
      X509_CRL_sort(crl.get()) != 1 ||
      X509_CRL_sign(crl.get(), ca_key.get(), EVP_sha256()) <= 0) {
    return InternalError("CRL signing failed");
  }
  BioPtr out(BIO_new(BIO_s_mem()));
  if (!out || PEM_write_bio_X509_CRL(out.get(), crl.get()) != 1) {
    return InternalError("CRL encoding failed");
  }
  char* data = nullptr;
  long n = BIO_get_mem_data(out.get(), &data);
  return DefaultFileSystem()->WriteFileAtomic(
      crl_file,
      std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(data),
                               static_cast<size_t>(n)),
      0644);
}

StatusOr<IssuedCertificate> IssueNodeCertificate(
    const std::string& ca_cert_file, const std::string& ca_key_file,
    uint32_t n_id, int64_t seconds) {
  KGR_ASSIGN_OR_RETURN(CertificateAuthority ca,
                       CertificateAuthority::Load(ca_cert_file, ca_key_file));
  // The same path as a node's renewal: a new key, a CSR, the CA signs it.
  KGR_ASSIGN_OR_RETURN(NodeCsr csr, MakeNodeCsr(n_id));
  IssuedCertificate out;
  KGR_ASSIGN_OR_RETURN(out.cert_pem,
                       ca.SignNodeCsr(n_id, csr.csr_der, seconds));
  out.key_pem = std::move(csr.key_pem);
  return out;
}

}  // namespace kgr
