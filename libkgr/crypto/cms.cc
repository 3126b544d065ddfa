#include "kgr/cms.h"

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/buffer.h>
#include <openssl/cms.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <optional>

#include "crypto/openssl_ptr.h"
#include "kgr/crypto.h"

namespace kgr {
namespace {

// Certificate and key files are small; this bounds what Load reads.
constexpr size_t kMaxPemFile = 1024 * 1024;

using openssl::BioPtr;
using openssl::Free;
using openssl::KeyPtr;
using openssl::X509Ptr;
using StorePtr = std::unique_ptr<X509_STORE, Free<X509_STORE, X509_STORE_free>>;
using StoreCtxPtr =
    std::unique_ptr<X509_STORE_CTX, Free<X509_STORE_CTX, X509_STORE_CTX_free>>;
using CmsPtr = std::unique_ptr<CMS_ContentInfo,
                               Free<CMS_ContentInfo, CMS_ContentInfo_free>>;
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, Free<EVP_MD_CTX, EVP_MD_CTX_free>>;

// A memory BIO that may hold plaintext: its contents are wiped before it is
// freed.
void FreeSecretBio(BIO* b) {
  char* data = nullptr;
  long n = BIO_get_mem_data(b, &data);
  if (data != nullptr && n > 0) OPENSSL_cleanse(data, static_cast<size_t>(n));
  BIO_free(b);
}
using SecretBioPtr = std::unique_ptr<BIO, Free<BIO, FreeSecretBio>>;

// A SignedData whose eContent may be secret: wiped before it is freed.
void FreeSecretCms(CMS_ContentInfo* c) {
  if (OBJ_obj2nid(CMS_get0_type(c)) == NID_pkcs7_signed) {
    ASN1_OCTET_STRING** content = CMS_get0_content(c);
    if (content != nullptr && *content != nullptr) {
      OPENSSL_cleanse(
          const_cast<unsigned char*>(ASN1_STRING_get0_data(*content)),
          static_cast<size_t>(ASN1_STRING_length(*content)));
    }
  }
  CMS_ContentInfo_free(c);
}
using SecretCmsPtr =
    std::unique_ptr<CMS_ContentInfo, Free<CMS_ContentInfo, FreeSecretCms>>;

// Logs (debug only) the newest OpenSSL error and empties the error queue.
void LogAndClear(const char* what) {
  unsigned long e = ERR_peek_last_error();
  if (e != 0) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    spdlog::debug("cms: {}: {}", what, buf);
  } else {
    spdlog::debug("cms: {}", what);
  }
  ERR_clear_error();
}

// Every failure to open a message looks the same from outside.
Status Fail(const char* what) {
  LogAndClear(what);
  return UnauthenticatedError(kVerificationFailed);
}

Status OpenSslFail(const char* what) {
  LogAndClear(what);
  return InternalError(std::string("OpenSSL: ") + what);
}

// Reads a whole (small) file; the buffer is wiped when released, as it may
// be a private key.
StatusOr<SecretBytes> ReadFile(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return NotFoundError("cannot read " + path);
  SecretBytes s;
  uint8_t buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) {
    s.Append({buf, n});
    if (s.size() > kMaxPemFile) break;
  }
  bool failed = std::ferror(f) != 0;
  std::fclose(f);
  OPENSSL_cleanse(buf, sizeof buf);
  if (failed) return NotFoundError("cannot read " + path);
  if (s.size() > kMaxPemFile) return InvalidArgumentError(path + ": too large");
  return s;
}

using openssl::Drain;
using openssl::MemBuf;
using openssl::NoPassphrase;

StatusOr<X509Ptr> LoadCert(const std::string& path) {
  KGR_ASSIGN_OR_RETURN(SecretBytes pem, ReadFile(path));
  BioPtr b = MemBuf(pem.span());
  X509Ptr c(b ? PEM_read_bio_X509(b.get(), nullptr, nullptr, nullptr)
              : nullptr);
  if (!c) {
    LogAndClear("PEM_read_bio_X509");
    return InvalidArgumentError(path + ": not a PEM certificate");
  }
  return c;
}

StatusOr<KeyPtr> LoadKey(const std::string& path) {
  KGR_ASSIGN_OR_RETURN(SecretBytes pem, ReadFile(path));
  BioPtr b = MemBuf(pem.span());
  KeyPtr k(b ? PEM_read_bio_PrivateKey(b.get(), nullptr, NoPassphrase, nullptr)
             : nullptr);
  if (!k) {
    LogAndClear("PEM_read_bio_PrivateKey");
    return InvalidArgumentError(path + ": not an unencrypted PEM private key");
  }
  return k;
}

StatusOr<Bytes> ToDer(X509* c) {
  int n = i2d_X509(c, nullptr);
  if (n <= 0) return OpenSslFail("i2d_X509");
  Bytes der(static_cast<size_t>(n));
  uint8_t* p = der.data();
  if (i2d_X509(c, &p) != n) return OpenSslFail("i2d_X509");
  return der;
}

// One DER certificate and nothing after it, or null.
X509Ptr FromDer(std::span<const uint8_t> der) {
  if (der.empty() || der.size() > kMaxPemFile) return nullptr;
  const uint8_t* p = der.data();
  X509Ptr c(d2i_X509(nullptr, &p, static_cast<long>(der.size())));
  if (c && p != der.data() + der.size()) c.reset();
  return c;
}

// The value of the one subject entry `nid` in UTF-8; nullopt if there is
// none, more than one, or it holds a NUL.
std::optional<std::string> SubjectEntry(X509* c, int nid) {
  X509_NAME* name = X509_get_subject_name(c);
  int i = X509_NAME_get_index_by_NID(name, nid, -1);
  if (i < 0 || X509_NAME_get_index_by_NID(name, nid, i) >= 0) {
    return std::nullopt;
  }
  ASN1_STRING* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i));
  unsigned char* utf8 = nullptr;
  int n = ASN1_STRING_to_UTF8(&utf8, data);
  if (n < 0) {
    ERR_clear_error();
    return std::nullopt;
  }
  std::string s(reinterpret_cast<const char*>(utf8), static_cast<size_t>(n));
  OPENSSL_free(utf8);
  if (s.find('\0') != std::string::npos) return std::nullopt;
  return s;
}

bool IsEc(EVP_PKEY* k) { return k != nullptr && EVP_PKEY_is_a(k, "EC") == 1; }

// True if `c` chains to the CA in `store` now.
bool ChainsTo(X509_STORE* store, X509* c) {
  StoreCtxPtr ctx(X509_STORE_CTX_new());
  bool ok = ctx && X509_STORE_CTX_init(ctx.get(), store, c, nullptr) == 1 &&
            X509_verify_cert(ctx.get()) == 1;
  if (!ok) {
    spdlog::debug(
        "cms: certificate chain: {}",
        ctx ? X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx.get()))
            : "no context");
    ERR_clear_error();
  }
  return ok;
}

// The verified signer's CN, OU and certificate; kVerificationFailed if the
// subject lacks exactly one of each.
StatusOr<CmsPeer> PeerOf(X509* signer) {
  std::optional<std::string> cn = SubjectEntry(signer, NID_commonName);
  std::optional<std::string> ou =
      SubjectEntry(signer, NID_organizationalUnitName);
  if (!cn || !ou) return Fail("signer subject needs exactly one CN and OU");
  CmsPeer peer;
  peer.common_name = std::move(*cn);
  peer.organizational_unit = std::move(*ou);
  KGR_ASSIGN_OR_RETURN(peer.certificate_der, ToDer(signer));
  return peer;
}

}  // namespace

struct CmsEndpoint::Impl {
  X509Ptr cert;
  KeyPtr key;
  StorePtr store;  // holds the CA; purpose "any"
};

CmsEndpoint::CmsEndpoint() = default;
CmsEndpoint::~CmsEndpoint() = default;

StatusOr<std::unique_ptr<CmsEndpoint>> CmsEndpoint::Load(
    const std::string& ca_file, const std::string& cert_file,
    const std::string& key_file) {
  auto impl = std::make_unique<Impl>();
  KGR_ASSIGN_OR_RETURN(X509Ptr ca, LoadCert(ca_file));
  KGR_ASSIGN_OR_RETURN(impl->cert, LoadCert(cert_file));
  KGR_ASSIGN_OR_RETURN(impl->key, LoadKey(key_file));
  if (X509_check_ca(ca.get()) == 0) {
    ERR_clear_error();
    return InvalidArgumentError(ca_file + ": not a CA certificate");
  }
  if (!IsEc(impl->key.get())) {
    return InvalidArgumentError(key_file + ": not an EC key");
  }
  if (X509_check_private_key(impl->cert.get(), impl->key.get()) != 1) {
    ERR_clear_error();
    return InvalidArgumentError(cert_file + " does not match " + key_file);
  }
  std::optional<std::string> cn =
      SubjectEntry(impl->cert.get(), NID_commonName);
  if (!cn) {
    return InvalidArgumentError(cert_file + ": subject needs exactly one CN");
  }
  impl->store.reset(X509_STORE_new());
  // KED certificates carry clientAuth/serverAuth, not S/MIME usages: the
  // chain to our CA is what authenticates a signer here.
  if (!impl->store || X509_STORE_add_cert(impl->store.get(), ca.get()) != 1 ||
      X509_STORE_set_purpose(impl->store.get(), X509_PURPOSE_ANY) != 1) {
    return OpenSslFail("X509_STORE setup");
  }
  if (!ChainsTo(impl->store.get(), impl->cert.get())) {
    return InvalidArgumentError(
        cert_file + " is not (or no longer) valid under the CA in " + ca_file);
  }
  std::unique_ptr<CmsEndpoint> e(new CmsEndpoint());
  KGR_ASSIGN_OR_RETURN(e->cert_der_, ToDer(impl->cert.get()));
  e->common_name_ = std::move(*cn);
  e->impl_ = std::move(impl);
  return e;
}

StatusOr<Bytes> CmsEndpoint::SignAndEncrypt(
    std::span<const uint8_t> content,
    std::span<const uint8_t> recipient_cert_der) const {
  if (content.size() > kMaxCmsContent) {
    return InvalidArgumentError("CMS content too large");
  }
  X509Ptr recipient = FromDer(recipient_cert_der);
  if (!recipient) {
    ERR_clear_error();
    return InvalidArgumentError("recipient certificate is not DER X.509");
  }
  if (!IsEc(X509_get0_pubkey(recipient.get()))) {
    ERR_clear_error();
    return InvalidArgumentError("recipient certificate has no EC key");
  }
  if (!ChainsTo(impl_->store.get(), recipient.get())) {
    return InvalidArgumentError(
        "recipient certificate is not valid under our CA");
  }

  // SignedData over `content`: SHA-256, ECDSA, our certificate included.
  BioPtr in = MemBuf(content);
  SecretCmsPtr sd(
      CMS_sign(nullptr, nullptr, nullptr, nullptr, CMS_PARTIAL | CMS_BINARY));
  if (!in || !sd ||
      CMS_add1_signer(sd.get(), impl_->cert.get(), impl_->key.get(),
                      EVP_sha256(), CMS_BINARY | CMS_NOSMIMECAP) == nullptr ||
      CMS_final(sd.get(), in.get(), nullptr, CMS_BINARY) != 1) {
    return OpenSslFail("CMS signing");
  }
  int n = i2d_CMS_ContentInfo(sd.get(), nullptr);
  if (n <= 0) return OpenSslFail("CMS signing");
  SecretBytes signed_der(static_cast<size_t>(n));
  uint8_t* p = signed_der.data();
  if (i2d_CMS_ContentInfo(sd.get(), &p) != n) return OpenSslFail("CMS signing");

  // AuthEnvelopedData: AES-256-GCM, ECDH with an X9.63 SHA-256 KDF and
  // AES-256 key wrap.
  BioPtr inner = MemBuf(signed_der.span());
  CmsPtr env(CMS_encrypt(nullptr, nullptr, EVP_aes_256_gcm(),
                         CMS_PARTIAL | CMS_BINARY));
  if (!inner || !env) return OpenSslFail("CMS encryption");
  CMS_RecipientInfo* ri =
      CMS_add1_recipient_cert(env.get(), recipient.get(), CMS_BINARY);
  if (ri == nullptr || CMS_RecipientInfo_type(ri) != CMS_RECIPINFO_AGREE) {
    return OpenSslFail("CMS recipient");
  }
  EVP_PKEY_CTX* pctx = CMS_RecipientInfo_get0_pkey_ctx(ri);
  if (pctx == nullptr ||
      EVP_PKEY_CTX_set_ecdh_kdf_md(pctx, EVP_sha256()) <= 0 ||
      CMS_final(env.get(), inner.get(), nullptr, CMS_BINARY) != 1) {
    return OpenSslFail("CMS encryption");
  }
  n = i2d_CMS_ContentInfo(env.get(), nullptr);
  if (n <= 0) return OpenSslFail("CMS encoding");
  Bytes out(static_cast<size_t>(n));
  p = out.data();
  if (i2d_CMS_ContentInfo(env.get(), &p) != n)
    return OpenSslFail("CMS encoding");
  return out;
}

StatusOr<std::pair<SecretBytes, CmsPeer>> CmsEndpoint::DecryptAndVerify(
    std::span<const uint8_t> message) const {
  if (message.empty() || message.size() > kMaxCmsMessage) {
    return InvalidArgumentError("not a CMS message of acceptable size");
  }
  const uint8_t* p = message.data();
  CmsPtr env(
      d2i_CMS_ContentInfo(nullptr, &p, static_cast<long>(message.size())));
  if (!env || p != message.data() + message.size()) {
    LogAndClear("d2i_CMS_ContentInfo");
    return InvalidArgumentError("not a CMS message");
  }
  if (OBJ_obj2nid(CMS_get0_type(env.get())) !=
          NID_id_smime_ct_authEnvelopedData ||
      OBJ_obj2nid(CMS_get0_eContentType(env.get())) != NID_pkcs7_data) {
    return Fail("not AuthEnvelopedData of data");
  }
  // Only the ciphertext, the GCM tag and what the key agreement depends on
  // are authenticated; refusing any encoding but DER (the message must
  // re-encode to itself) leaves less room to alter the rest. Values that
  // nothing reads (the two version numbers, the GCM ICV-length parameter,
  // the ephemeral key's unused-bits count when harmless) can still be
  // changed, without changing the result: callers must not use the message
  // bytes as an identifier.
  if (i2d_CMS_ContentInfo(env.get(), nullptr) !=
      static_cast<int>(message.size())) {
    return Fail("not DER");
  }
  {
    Bytes reencoded(message.size());
    uint8_t* q = reencoded.data();
    if (i2d_CMS_ContentInfo(env.get(), &q) !=
            static_cast<int>(message.size()) ||
        !std::equal(reencoded.begin(), reencoded.end(), message.begin())) {
      return Fail("not DER");
    }
  }
  SecretBioPtr decrypted(BIO_new(BIO_s_mem()));
  if (!decrypted) return OpenSslFail("BIO_new");
  if (CMS_decrypt(env.get(), impl_->key.get(), impl_->cert.get(), nullptr,
                  decrypted.get(), CMS_BINARY) != 1) {
    return Fail("CMS_decrypt");
  }
  SecretBytes signed_der = Drain(decrypted.get());
  if (signed_der.empty()) return Fail("empty envelope");
  p = signed_der.data();
  SecretCmsPtr sd(
      d2i_CMS_ContentInfo(nullptr, &p, static_cast<long>(signed_der.size())));
  if (!sd || p != signed_der.data() + signed_der.size()) {
    return Fail("inner is not one CMS message");
  }
  if (OBJ_obj2nid(CMS_get0_type(sd.get())) != NID_pkcs7_signed ||
      OBJ_obj2nid(CMS_get0_eContentType(sd.get())) != NID_pkcs7_data) {
    return Fail("inner is not SignedData of data");
  }
  STACK_OF(CMS_SignerInfo)* infos = CMS_get0_SignerInfos(sd.get());
  if (infos == nullptr || sk_CMS_SignerInfo_num(infos) != 1) {
    return Fail("not exactly one signer");
  }
  SecretBioPtr content(BIO_new(BIO_s_mem()));
  if (!content) return OpenSslFail("BIO_new");
  // Verifies the signature (signed attributes included) and the signer's
  // chain to our CA; the signer's certificate must be in the message.
  if (CMS_verify(sd.get(), nullptr, impl_->store.get(), nullptr, content.get(),
                 CMS_BINARY) != 1) {
    return Fail("CMS_verify");
  }
  X509* signer = nullptr;
  CMS_SignerInfo_get0_algs(sk_CMS_SignerInfo_value(infos, 0), nullptr, &signer,
                           nullptr, nullptr);
  if (signer == nullptr) return Fail("no signer certificate");
  KGR_ASSIGN_OR_RETURN(CmsPeer peer, PeerOf(signer));
  return std::make_pair(Drain(content.get()), std::move(peer));
}

StatusOr<Bytes> CmsEndpoint::SignDetached(std::span<const uint8_t> data) const {
  MdCtxPtr ctx(EVP_MD_CTX_new());
  size_t n = 0;
  if (!ctx ||
      EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr,
                         impl_->key.get()) != 1 ||
      EVP_DigestSign(ctx.get(), nullptr, &n, data.data(), data.size()) != 1) {
    return OpenSslFail("EVP_DigestSign");
  }
  Bytes sig(n);
  if (EVP_DigestSign(ctx.get(), sig.data(), &n, data.data(), data.size()) !=
      1) {
    return OpenSslFail("EVP_DigestSign");
  }
  sig.resize(n);
  return sig;
}

StatusOr<CmsPeer> VerifyDetached(std::span<const uint8_t> data,
                                 std::span<const uint8_t> signature,
                                 std::span<const uint8_t> signer_cert_der,
                                 std::string_view ca_pem) {
  BioPtr b = MemBuf(AsBytes(ca_pem));
  X509Ptr ca(b ? PEM_read_bio_X509(b.get(), nullptr, nullptr, nullptr)
               : nullptr);
  if (!ca || X509_check_ca(ca.get()) == 0) {
    LogAndClear("CA certificate");
    return InvalidArgumentError("no CA certificate");
  }
  StorePtr store(X509_STORE_new());
  if (!store || X509_STORE_add_cert(store.get(), ca.get()) != 1 ||
      X509_STORE_set_purpose(store.get(), X509_PURPOSE_ANY) != 1 ||
      X509_STORE_set_flags(store.get(), X509_V_FLAG_NO_CHECK_TIME) != 1) {
    return OpenSslFail("X509_STORE setup");
  }
  X509Ptr signer = FromDer(signer_cert_der);
  if (!signer) return Fail("signer certificate is not DER X.509");
  if (!IsEc(X509_get0_pubkey(signer.get()))) return Fail("signer key not EC");
  if (!ChainsTo(store.get(), signer.get())) return Fail("signer chain");
  MdCtxPtr ctx(EVP_MD_CTX_new());
  // OpenSSL's ECDSA verification accepts only the DER encoding of the
  // signature, nothing after it.
  if (!ctx ||
      EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(), nullptr,
                           X509_get0_pubkey(signer.get())) != 1 ||
      EVP_DigestVerify(ctx.get(), signature.data(), signature.size(),
                       data.data(), data.size()) != 1) {
    return Fail("signature");
  }
  return PeerOf(signer.get());
}

StatusOr<Bytes> LoadCertificateDer(const std::string& pem_file) {
  KGR_ASSIGN_OR_RETURN(X509Ptr c, LoadCert(pem_file));
  return ToDer(c.get());
}

}  // namespace kgr
