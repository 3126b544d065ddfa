#include "kgr/cms.h"

#include <openssl/bio.h>
#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include <cstdio>

#include "kgr/crypto.h"

namespace kgr {
namespace {

template <typename T, void (*F)(T*)>
struct Free {
  void operator()(T* p) const { F(p); }
};
using X509Ptr = std::unique_ptr<X509, Free<X509, X509_free>>;
using KeyPtr = std::unique_ptr<EVP_PKEY, Free<EVP_PKEY, EVP_PKEY_free>>;
using BioPtr = std::unique_ptr<BIO, Free<BIO, BIO_free_all>>;
using StorePtr = std::unique_ptr<X509_STORE, Free<X509_STORE, X509_STORE_free>>;
using CmsPtr =
    std::unique_ptr<CMS_ContentInfo, Free<CMS_ContentInfo, CMS_ContentInfo_free>>;
void FreeCerts(STACK_OF(X509) * s) { sk_X509_pop_free(s, X509_free); }
using CertsPtr = std::unique_ptr<STACK_OF(X509), Free<STACK_OF(X509), FreeCerts>>;
using StoreCtxPtr =
    std::unique_ptr<X509_STORE_CTX, Free<X509_STORE_CTX, X509_STORE_CTX_free>>;

// Every failure to open a message looks the same from outside.
Status Fail() {
  ERR_clear_error();
  return UnauthenticatedError(kVerificationFailed);
}

StatusOr<std::string> ReadFile(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return NotFoundError("cannot read " + path);
  std::string s;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) s.append(buf, n);
  std::fclose(f);
  return s;
}

StatusOr<X509Ptr> LoadCert(const std::string& path) {
  KGR_ASSIGN_OR_RETURN(std::string pem, ReadFile(path));
  BioPtr b(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  X509Ptr c(PEM_read_bio_X509(b.get(), nullptr, nullptr, nullptr));
  if (!c) {
    ERR_clear_error();
    return InvalidArgumentError(path + ": not a PEM certificate");
  }
  return c;
}

StatusOr<Bytes> ToDer(X509* c) {
  int n = i2d_X509(c, nullptr);
  if (n <= 0) return InternalError("certificate encoding failed");
  Bytes der(static_cast<size_t>(n));
  uint8_t* p = der.data();
  i2d_X509(c, &p);
  return der;
}

X509Ptr FromDer(std::span<const uint8_t> der) {
  const uint8_t* p = der.data();
  return X509Ptr(d2i_X509(nullptr, &p, static_cast<long>(der.size())));
}

std::string NameEntry(X509* c, int nid) {
  char buf[256];
  int n = X509_NAME_get_text_by_NID(X509_get_subject_name(c), nid, buf,
                                    sizeof buf);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
}

// Reads all of `bio` into a SecretBytes (wiping the BIO's memory after).
SecretBytes Drain(BIO* bio) {
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  SecretBytes out;
  if (n > 0) {
    out = SecretBytes(std::span<const uint8_t>(
        reinterpret_cast<const uint8_t*>(data), static_cast<size_t>(n)));
    OPENSSL_cleanse(data, static_cast<size_t>(n));
  }
  return out;
}

}  // namespace

struct CmsEndpoint::Impl {
  X509Ptr cert;
  KeyPtr key;
  StorePtr store;
};

CmsEndpoint::~CmsEndpoint() = default;

StatusOr<std::unique_ptr<CmsEndpoint>> CmsEndpoint::Load(
    const std::string& ca_file, const std::string& cert_file,
    const std::string& key_file) {
  auto impl = std::make_unique<Impl>();
  KGR_ASSIGN_OR_RETURN(X509Ptr ca, LoadCert(ca_file));
  KGR_ASSIGN_OR_RETURN(impl->cert, LoadCert(cert_file));
  {
    KGR_ASSIGN_OR_RETURN(std::string pem, ReadFile(key_file));
    BioPtr b(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
    impl->key.reset(PEM_read_bio_PrivateKey(b.get(), nullptr, nullptr, nullptr));
    OPENSSL_cleanse(pem.data(), pem.size());
    if (!impl->key) {
      ERR_clear_error();
      return InvalidArgumentError(key_file + ": not a PEM private key");
    }
  }
  if (X509_check_private_key(impl->cert.get(), impl->key.get()) != 1) {
    ERR_clear_error();
    return InvalidArgumentError(cert_file + " does not match " + key_file);
  }
  impl->store.reset(X509_STORE_new());
  // KED certificates carry clientAuth/serverAuth, not S/MIME usages: the
  // chain to our CA is what authenticates a signer here.
  if (!impl->store || X509_STORE_add_cert(impl->store.get(), ca.get()) != 1 ||
      X509_STORE_set_purpose(impl->store.get(), X509_PURPOSE_ANY) != 1) {
    return InternalError("X509_STORE setup failed");
  }
  StoreCtxPtr ctx(X509_STORE_CTX_new());
  if (!ctx || X509_STORE_CTX_init(ctx.get(), impl->store.get(),
                                  impl->cert.get(), nullptr) != 1 ||
      X509_verify_cert(ctx.get()) != 1) {
    ERR_clear_error();
    return InvalidArgumentError(cert_file + " is not issued by the CA in " +
                                ca_file);
  }
  std::unique_ptr<CmsEndpoint> e(new CmsEndpoint());
  KGR_ASSIGN_OR_RETURN(e->cert_der_, ToDer(impl->cert.get()));
  e->common_name_ = NameEntry(impl->cert.get(), NID_commonName);
  e->impl_ = std::move(impl);
  return e;
}

StatusOr<Bytes> CmsEndpoint::SignAndEncrypt(
    std::span<const uint8_t> content,
    std::span<const uint8_t> recipient_cert_der) const {
  X509Ptr recipient = FromDer(recipient_cert_der);
  if (!recipient) {
    ERR_clear_error();
    return InvalidArgumentError("recipient certificate is not DER X.509");
  }
  BioPtr in(BIO_new_mem_buf(content.data(), static_cast<int>(content.size())));
  CmsPtr signed_data(CMS_sign(impl_->cert.get(), impl_->key.get(), nullptr,
                              in.get(), CMS_BINARY));
  BioPtr inner(BIO_new(BIO_s_mem()));
  if (!signed_data || !inner ||
      i2d_CMS_bio(inner.get(), signed_data.get()) != 1) {
    ERR_clear_error();
    return InternalError("CMS signing failed");
  }
  CertsPtr recipients(sk_X509_new_null());
  if (!recipients || !sk_X509_push(recipients.get(), recipient.get())) {
    return InternalError("out of memory");
  }
  recipient.release();  // owned by the stack now
  CmsPtr env(CMS_encrypt(recipients.get(), inner.get(), EVP_aes_256_cbc(),
                         CMS_BINARY));
  BioPtr out(BIO_new(BIO_s_mem()));
  if (!env || !out || i2d_CMS_bio(out.get(), env.get()) != 1) {
    ERR_clear_error();
    return InternalError("CMS encryption failed");
  }
  char* data = nullptr;
  long n = BIO_get_mem_data(out.get(), &data);
  return Bytes(data, data + n);
}

StatusOr<std::pair<SecretBytes, CmsPeer>> CmsEndpoint::DecryptAndVerify(
    std::span<const uint8_t> message) const {
  if (message.empty() || message.size() > kMaxCmsMessage) {
    return InvalidArgumentError("not a CMS message of acceptable size");
  }
  BioPtr in(BIO_new_mem_buf(message.data(), static_cast<int>(message.size())));
  CmsPtr env(d2i_CMS_bio(in.get(), nullptr));
  if (!env) {
    ERR_clear_error();
    return InvalidArgumentError("not a CMS message");
  }
  BioPtr inner(BIO_new(BIO_s_mem()));
  if (CMS_decrypt(env.get(), impl_->key.get(), impl_->cert.get(), nullptr,
                  inner.get(), CMS_BINARY) != 1) {
    return Fail();
  }
  SecretBytes signed_der = Drain(inner.get());
  BioPtr sin(BIO_new_mem_buf(signed_der.data(),
                             static_cast<int>(signed_der.size())));
  CmsPtr sd(d2i_CMS_bio(sin.get(), nullptr));
  if (!sd) return Fail();
  BioPtr content(BIO_new(BIO_s_mem()));
  if (CMS_verify(sd.get(), nullptr, impl_->store.get(), nullptr, content.get(),
                 CMS_BINARY) != 1) {
    return Fail();
  }
  CertsPtr signers(CMS_get0_signers(sd.get()));
  // CMS_get0_signers returns borrowed certificates: release the stack only.
  STACK_OF(X509)* raw = signers.release();
  if (raw == nullptr || sk_X509_num(raw) != 1) {
    sk_X509_free(raw);
    return Fail();
  }
  X509* signer = sk_X509_value(raw, 0);
  CmsPeer peer;
  peer.common_name = NameEntry(signer, NID_commonName);
  peer.organizational_unit = NameEntry(signer, NID_organizationalUnitName);
  auto der = ToDer(signer);
  sk_X509_free(raw);
  if (!der.ok()) return der.status();
  peer.certificate_der = std::move(*der);
  return std::make_pair(Drain(content.get()), std::move(peer));
}

StatusOr<Bytes> LoadCertificateDer(const std::string& pem_file) {
  KGR_ASSIGN_OR_RETURN(X509Ptr c, LoadCert(pem_file));
  return ToDer(c.get());
}

}  // namespace kgr
