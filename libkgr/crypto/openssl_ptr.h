// unique_ptr aliases for the OpenSSL objects libkgr owns, each freed with
// its own *_free function, and the memory-BIO helpers the PEM/DER readers
// share. Private to libkgr.
#ifndef KGR_CRYPTO_OPENSSL_PTR_H_
#define KGR_CRYPTO_OPENSSL_PTR_H_

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include <cstdint>
#include <memory>
#include <span>

#include "kgr/secret.h"

namespace kgr::openssl {

template <typename T, void (*F)(T*)>
struct Free {
  void operator()(T* p) const { F(p); }
};

using X509Ptr = std::unique_ptr<X509, Free<X509, X509_free>>;
using KeyPtr = std::unique_ptr<EVP_PKEY, Free<EVP_PKEY, EVP_PKEY_free>>;
using BioPtr = std::unique_ptr<BIO, Free<BIO, BIO_free_all>>;
using ReqPtr = std::unique_ptr<X509_REQ, Free<X509_REQ, X509_REQ_free>>;

// A read-only memory BIO over `b`, which must outlive it (null on failure).
inline BioPtr MemBuf(std::span<const uint8_t> b) {
  static const uint8_t kEmpty = 0;  // BIO_new_mem_buf refuses nullptr
  return BioPtr(BIO_new_mem_buf(b.empty() ? &kEmpty : b.data(),
                                static_cast<int>(b.size())));
}

// Everything a memory BIO holds, as SecretBytes (it may hold a private key).
inline SecretBytes Drain(BIO* bio) {
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio, &data);
  SecretBytes out;
  if (data != nullptr && n > 0) {
    out.Append(
        {reinterpret_cast<const uint8_t*>(data), static_cast<size_t>(n)});
  }
  return out;
}

// A pem_password_cb that refuses to prompt for a passphrase (OpenSSL's
// default reads the terminal).
inline int NoPassphrase(char*, int, int, void*) { return -1; }

}  // namespace kgr::openssl

#endif  // KGR_CRYPTO_OPENSSL_PTR_H_
