// X25519 recovery keys as PEM (kgr/ks_backup.h).
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "crypto/openssl_ptr.h"
#include "kgr/ks_backup.h"

namespace kgr {
namespace {

using openssl::BioPtr;
using openssl::KeyPtr;

using openssl::Drain;
using openssl::MemBuf;
using openssl::NoPassphrase;

Status NotX25519(const std::string& what, const char* kind) {
  ERR_clear_error();
  return InvalidArgumentError(what + ": not an X25519 " + kind +
                              " in PEM (openssl genpkey -algorithm X25519)");
}

}  // namespace

StatusOr<RecoveryKeyPem> GenerateRecoveryKey() {
  KGR_ASSIGN_OR_RETURN(X25519KeyPair pair, GenerateX25519());
  KeyPtr key(EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, nullptr,
                                          pair.private_key.data(),
                                          pair.private_key.size()));
  BioPtr priv(BIO_new(BIO_s_secmem()));
  BioPtr pub(BIO_new(BIO_s_mem()));
  if (!key || !priv || !pub ||
      PEM_write_bio_PrivateKey(priv.get(), key.get(), nullptr, nullptr, 0,
                               nullptr, nullptr) != 1 ||
      PEM_write_bio_PUBKEY(pub.get(), key.get()) != 1) {
    ERR_clear_error();
    return InternalError("cannot encode the recovery key as PEM");
  }
  RecoveryKeyPem out;
  out.private_pem = Drain(priv.get());
  SecretBytes pub_text = Drain(pub.get());
  out.public_pem.assign(pub_text.span().begin(), pub_text.span().end());
  return out;
}

StatusOr<Bytes> ParseRecoveryPublicKey(std::span<const uint8_t> pem,
                                       const std::string& what) {
  BioPtr b = MemBuf(pem);
  KeyPtr key(b ? PEM_read_bio_PUBKEY(b.get(), nullptr, NoPassphrase, nullptr)
               : nullptr);
  if (!key || EVP_PKEY_get_id(key.get()) != EVP_PKEY_X25519) {
    return NotX25519(what, "public key");
  }
  Bytes raw(kX25519Size);
  size_t n = raw.size();
  if (EVP_PKEY_get_raw_public_key(key.get(), raw.data(), &n) != 1 ||
      n != kX25519Size) {
    return NotX25519(what, "public key");
  }
  return raw;
}

StatusOr<SecretBytes> ParseRecoveryPrivateKey(std::span<const uint8_t> pem,
                                              const std::string& what) {
  BioPtr b = MemBuf(pem);
  KeyPtr key(
      b ? PEM_read_bio_PrivateKey(b.get(), nullptr, NoPassphrase, nullptr)
        : nullptr);
  if (!key || EVP_PKEY_get_id(key.get()) != EVP_PKEY_X25519) {
    return NotX25519(what, "private key (unencrypted)");
  }
  SecretBytes raw(kX25519Size);
  size_t n = raw.size();
  if (EVP_PKEY_get_raw_private_key(key.get(), raw.data(), &n) != 1 ||
      n != kX25519Size) {
    return NotX25519(what, "private key (unencrypted)");
  }
  return raw;
}

}  // namespace kgr
