// unique_ptr aliases for the OpenSSL objects libkgr owns, each freed with
// its own *_free function. Private to libkgr.
#ifndef KGR_CRYPTO_OPENSSL_PTR_H_
#define KGR_CRYPTO_OPENSSL_PTR_H_

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include <memory>

namespace kgr::openssl {

template <typename T, void (*F)(T*)>
struct Free {
  void operator()(T* p) const { F(p); }
};

using X509Ptr = std::unique_ptr<X509, Free<X509, X509_free>>;
using KeyPtr = std::unique_ptr<EVP_PKEY, Free<EVP_PKEY, EVP_PKEY_free>>;
using BioPtr = std::unique_ptr<BIO, Free<BIO, BIO_free_all>>;
using ReqPtr = std::unique_ptr<X509_REQ, Free<X509_REQ, X509_REQ_free>>;

}  // namespace kgr::openssl

#endif  // KGR_CRYPTO_OPENSSL_PTR_H_
