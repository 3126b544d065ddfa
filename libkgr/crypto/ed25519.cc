#include "kgr/ed25519.h"

#include <openssl/evp.h>

#include "crypto/openssl_ptr.h"
#include "kgr/crypto.h"

namespace kgr {
namespace {

using MdCtxPtr =
    std::unique_ptr<EVP_MD_CTX, openssl::Free<EVP_MD_CTX, EVP_MD_CTX_free>>;

// The concatenation of `parts` (Ed25519 is one-shot: it hashes the message
// twice). Wiped by the caller when it held secrets; here it never does.
Bytes Concat(std::initializer_list<std::span<const uint8_t>> parts) {
  size_t n = 0;
  for (auto p : parts) n += p.size();
  Bytes out;
  out.reserve(n);
  for (auto p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

StatusOr<Ed25519KeyPair> ExportPair(EVP_PKEY* key) {
  Ed25519KeyPair kp;
  kp.private_key = SecretBytes(kEd25519PrivateSize);
  kp.public_key.resize(kEd25519PublicSize);
  size_t priv_len = kEd25519PrivateSize, pub_len = kEd25519PublicSize;
  if (EVP_PKEY_get_raw_private_key(key, kp.private_key.data(), &priv_len) !=
          1 ||
      EVP_PKEY_get_raw_public_key(key, kp.public_key.data(), &pub_len) != 1 ||
      priv_len != kEd25519PrivateSize || pub_len != kEd25519PublicSize) {
    return InternalError("Ed25519 key export failed");
  }
  return kp;
}

}  // namespace

StatusOr<Ed25519KeyPair> GenerateEd25519() {
  openssl::KeyPtr key(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"));
  if (!key) return InternalError("Ed25519 key generation failed");
  return ExportPair(key.get());
}

StatusOr<Ed25519KeyPair> Ed25519FromSeed(std::span<const uint8_t> seed) {
  if (seed.size() != kEd25519PrivateSize) {
    return InvalidArgumentError("an Ed25519 private key is 32 bytes");
  }
  openssl::KeyPtr key(EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nullptr,
                                                   seed.data(), seed.size()));
  if (!key) return InvalidArgumentError("bad Ed25519 private key");
  return ExportPair(key.get());
}

StatusOr<Bytes> Ed25519Sign(
    const SecretBytes& private_key,
    std::initializer_list<std::span<const uint8_t>> parts) {
  if (private_key.size() != kEd25519PrivateSize) {
    return InvalidArgumentError("an Ed25519 private key is 32 bytes");
  }
  openssl::KeyPtr key(EVP_PKEY_new_raw_private_key(
      EVP_PKEY_ED25519, nullptr, private_key.data(), private_key.size()));
  MdCtxPtr ctx(EVP_MD_CTX_new());
  if (!key || !ctx) return InternalError("Ed25519 signing failed");
  Bytes message = Concat(parts);
  Bytes signature(kEd25519SignatureSize);
  size_t len = signature.size();
  if (EVP_DigestSignInit_ex(ctx.get(), nullptr, nullptr, nullptr, nullptr,
                            key.get(), nullptr) != 1 ||
      EVP_DigestSign(ctx.get(), signature.data(), &len, message.data(),
                     message.size()) != 1 ||
      len != kEd25519SignatureSize) {
    return InternalError("Ed25519 signing failed");
  }
  return signature;
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
  if (!key || !ctx) return UnauthenticatedError(kVerificationFailed);
  Bytes message = Concat(parts);
  if (EVP_DigestVerifyInit_ex(ctx.get(), nullptr, nullptr, nullptr, nullptr,
                              key.get(), nullptr) != 1 ||
      EVP_DigestVerify(ctx.get(), signature.data(), signature.size(),
                       message.data(), message.size()) != 1) {
    return UnauthenticatedError(kVerificationFailed);
  }
  return OkStatus();
}

}  // namespace kgr
