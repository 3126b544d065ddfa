// Ed25519 on OpenSSL 3 (EVP_DigestSign with a null digest: pure Ed25519).
#include "kgr/ed25519.h"

#include <openssl/evp.h>

#include "crypto/openssl_ptr.h"
#include "kgr/crypto.h"

namespace kgr {
namespace {

using MdCtxPtr = std::unique_ptr<EVP_MD_CTX,
                                 openssl::Free<EVP_MD_CTX, EVP_MD_CTX_free>>;

Bytes Concat(std::initializer_list<std::span<const uint8_t>> parts) {
  size_t n = 0;
  for (const auto& p : parts) n += p.size();
  Bytes all;
  all.reserve(n);
  for (const auto& p : parts) all.insert(all.end(), p.begin(), p.end());
  return all;
}

openssl::KeyPtr PrivateKey(const SecretBytes& private_key) {
  if (private_key.size() != kEd25519PrivateSize) return nullptr;
  return openssl::KeyPtr(EVP_PKEY_new_raw_private_key(
      EVP_PKEY_ED25519, nullptr, private_key.data(), private_key.size()));
}

StatusOr<Bytes> RawPublic(EVP_PKEY* key) {
  Bytes pub(kEd25519PublicSize);
  size_t len = pub.size();
  if (EVP_PKEY_get_raw_public_key(key, pub.data(), &len) != 1 ||
      len != kEd25519PublicSize) {
    return InternalError("Ed25519 public key export failed");
  }
  return pub;
}

}  // namespace

StatusOr<Ed25519KeyPair> GenerateEd25519() {
  openssl::KeyPtr key(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"));
  if (!key) return InternalError("Ed25519 key generation failed");
  Ed25519KeyPair kp;
  kp.private_key = SecretBytes(kEd25519PrivateSize);
  size_t len = kp.private_key.size();
  if (EVP_PKEY_get_raw_private_key(key.get(), kp.private_key.data(), &len) !=
          1 ||
      len != kEd25519PrivateSize) {
    return InternalError("Ed25519 key export failed");
  }
  KGR_ASSIGN_OR_RETURN(kp.public_key, RawPublic(key.get()));
  return kp;
}

StatusOr<Bytes> Ed25519PublicKey(const SecretBytes& private_key) {
  openssl::KeyPtr key = PrivateKey(private_key);
  if (!key) return InvalidArgumentError("Ed25519 private key: need 32 bytes");
  return RawPublic(key.get());
}

StatusOr<Ed25519Signature> Ed25519Sign(
    const SecretBytes& private_key,
    std::initializer_list<std::span<const uint8_t>> parts) {
  openssl::KeyPtr key = PrivateKey(private_key);
  if (!key) return InvalidArgumentError("Ed25519 private key: need 32 bytes");
  MdCtxPtr ctx(EVP_MD_CTX_new());
  const Bytes message = Concat(parts);
  Ed25519Signature sig{};
  size_t len = sig.size();
  if (!ctx ||
      EVP_DigestSignInit(ctx.get(), nullptr, nullptr, nullptr, key.get()) !=
          1 ||
      EVP_DigestSign(ctx.get(), sig.data(), &len, message.data(),
                     message.size()) != 1 ||
      len != sig.size()) {
    return InternalError("Ed25519 signing failed");
  }
  return sig;
}

Status Ed25519Verify(std::span<const uint8_t> public_key,
                     std::initializer_list<std::span<const uint8_t>> parts,
                     std::span<const uint8_t> signature) {
  if (public_key.size() != kEd25519PublicSize ||
      signature.size() != kEd25519SignatureSize) {
    return UnauthenticatedError(kVerificationFailed);
  }
  openssl::KeyPtr key(EVP_PKEY_new_raw_public_key(
      EVP_PKEY_ED25519, nullptr, public_key.data(), public_key.size()));
  MdCtxPtr ctx(EVP_MD_CTX_new());
  const Bytes message = Concat(parts);
  if (!key || !ctx ||
      EVP_DigestVerifyInit(ctx.get(), nullptr, nullptr, nullptr, key.get()) !=
          1 ||
      EVP_DigestVerify(ctx.get(), signature.data(), signature.size(),
                       message.data(), message.size()) != 1) {
    return UnauthenticatedError(kVerificationFailed);
  }
  return OkStatus();
}

}  // namespace kgr
