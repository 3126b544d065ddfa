#include "kgr/crypto.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/rand.h>
#include <pthread.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <memory>
#include <mutex>

#include "crypto/internal.h"

namespace kgr {
namespace {

struct CipherCtxFree {
  void operator()(EVP_CIPHER_CTX* c) const { EVP_CIPHER_CTX_free(c); }
};
struct MacCtxFree {
  void operator()(EVP_MAC_CTX* c) const { EVP_MAC_CTX_free(c); }
};
struct KdfCtxFree {
  void operator()(EVP_KDF_CTX* c) const { EVP_KDF_CTX_free(c); }
};

// Fetched once; EVP_* objects are immutable and safe to share across threads.
const EVP_CIPHER* Aes256Ctr() {
  static EVP_CIPHER* c = EVP_CIPHER_fetch(nullptr, "AES-256-CTR", nullptr);
  return c;
}
EVP_MAC* HmacAlg() {
  static EVP_MAC* m = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
  return m;
}
EVP_KDF* HkdfAlg() {
  static EVP_KDF* k = EVP_KDF_fetch(nullptr, "HKDF", nullptr);
  return k;
}
const EVP_MD* Sha256Md() {
  static EVP_MD* m = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  return m;
}

// Per-thread contexts, reused so that an operation costs no allocation and
// no provider lookup (setting the digest by name fetches it again on every
// EVP_MAC_init). After every use the context is re-keyed with an all-zero
// key, so no key, key schedule or HMAC pad state outlives the call; freed
// (and cleansed by OpenSSL) when the thread ends.
constexpr uint8_t kZeroKey[kKeySize] = {};
constexpr uint8_t kZeroIv[kIvSize] = {};

// A keyless HMAC context with SHA-256 set (null on failure).
std::unique_ptr<EVP_MAC_CTX, MacCtxFree> NewHmacSha256Ctx() {
  std::unique_ptr<EVP_MAC_CTX, MacCtxFree> c(
      HmacAlg() ? EVP_MAC_CTX_new(HmacAlg()) : nullptr);
  char digest[] = "SHA256";
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
      OSSL_PARAM_construct_end()};
  if (c && EVP_MAC_CTX_set_params(c.get(), params) != 1) c.reset();
  return c;
}

EVP_MAC_CTX* ThreadHmacCtx() {
  thread_local std::unique_ptr<EVP_MAC_CTX, MacCtxFree> ctx =
      NewHmacSha256Ctx();
  return ctx.get();
}

// Set up for AES-256-CTR once (with the zero key); operations only re-key.
EVP_CIPHER_CTX* ThreadCipherCtx() {
  thread_local std::unique_ptr<EVP_CIPHER_CTX, CipherCtxFree> ctx = [] {
    std::unique_ptr<EVP_CIPHER_CTX, CipherCtxFree> c(EVP_CIPHER_CTX_new());
    if (c && (Aes256Ctr() == nullptr ||
              EVP_EncryptInit_ex2(c.get(), Aes256Ctr(), kZeroKey, kZeroIv,
                                  nullptr) != 1)) {
      c.reset();
    }
    return c;
  }();
  return ctx.get();
}

// Scrubs a thread context on every return path of the operation.
class ScrubHmac {
 public:
  explicit ScrubHmac(EVP_MAC_CTX* ctx) : ctx_(ctx) {}
  ~ScrubHmac() { EVP_MAC_init(ctx_, kZeroKey, sizeof kZeroKey, nullptr); }

 private:
  EVP_MAC_CTX* ctx_;
};
class ScrubCipher {
 public:
  explicit ScrubCipher(EVP_CIPHER_CTX* ctx) : ctx_(ctx) {}
  ~ScrubCipher() {
    EVP_EncryptInit_ex2(ctx_, nullptr, kZeroKey, kZeroIv, nullptr);
  }

 private:
  EVP_CIPHER_CTX* ctx_;
};

}  // namespace

namespace crypto_internal {

// Keyed contexts for one key pair. Thread-safe (one operation at a time).
class PreparedKeys {
 public:
  static StatusOr<std::shared_ptr<const PreparedKeys>> Create(
      const SymmetricKeys& keys) {
    auto p = std::make_shared<PreparedKeys>();
    p->enc_ = keys.enc_.Clone();
    p->mac_ = keys.mac_.Clone();
    p->aes_.reset(EVP_CIPHER_CTX_new());
    p->hmac_ = NewHmacSha256Ctx();
    if (!p->aes_ || !p->hmac_ || Aes256Ctr() == nullptr ||
        EVP_EncryptInit_ex2(p->aes_.get(), Aes256Ctr(), keys.enc_.data(),
                            kZeroIv, nullptr) != 1 ||
        EVP_MAC_init(p->hmac_.get(), keys.mac_.data(), keys.mac_.size(),
                     nullptr) != 1) {
      return InternalError("preparing keys failed");
    }
    return std::shared_ptr<const PreparedKeys>(std::move(p));
  }

  // The prepared contexts of `keys` if it has them and they still match.
  static const PreparedKeys* For(const SymmetricKeys& keys) {
    const PreparedKeys* p = keys.prepared_.get();
    if (p == nullptr || !p->Matches(keys)) return nullptr;
    return p;
  }

  // Whether these contexts were made from exactly `keys` (constant time).
  bool Matches(const SymmetricKeys& keys) const {
    return keys.enc_.Equals(enc_) && keys.mac_.Equals(mac_);
  }

  Status Aes(const Iv& iv, std::span<const uint8_t> in,
             std::span<uint8_t> out) const {
    if (in.empty()) return OkStatus();
    std::lock_guard<std::mutex> lock(mu_);
    int len = 0;
    // A new IV only: the key schedule stays.
    if (EVP_EncryptInit_ex2(aes_.get(), nullptr, nullptr, iv.data(), nullptr) !=
            1 ||
        EVP_EncryptUpdate(aes_.get(), out.data(), &len, in.data(),
                          static_cast<int>(in.size())) != 1 ||
        static_cast<size_t>(len) != in.size()) {
      return InternalError("AES-256-CTR failed");
    }
    return OkStatus();
  }

  StatusOr<Tag> Hmac(std::span<const uint8_t> data) const {
    return Hmac({data});
  }
  StatusOr<Tag> Hmac(
      std::initializer_list<std::span<const uint8_t>> parts) const {
    std::lock_guard<std::mutex> lock(mu_);
    // No key: back to the keyed start state (the pads stay).
    if (EVP_MAC_init(hmac_.get(), nullptr, 0, nullptr) != 1) {
      return InternalError("HMAC failed");
    }
    for (auto p : parts) {
      if (!p.empty() && EVP_MAC_update(hmac_.get(), p.data(), p.size()) != 1) {
        return InternalError("HMAC failed");
      }
    }
    Tag tag;
    size_t n = 0;
    if (EVP_MAC_final(hmac_.get(), tag.data(), &n, tag.size()) != 1 ||
        n != tag.size()) {
      return InternalError("HMAC final failed");
    }
    return tag;
  }

 private:
  mutable std::mutex mu_;
  SecretBytes enc_, mac_;
  std::unique_ptr<EVP_CIPHER_CTX, CipherCtxFree> aes_;
  std::unique_ptr<EVP_MAC_CTX, MacCtxFree> hmac_;
};

}  // namespace crypto_internal

namespace {

// OK if `expected` was computed and equals `tag` (constant time), else the
// error, or UNAUTHENTICATED(kVerificationFailed).
Status CheckTag(const StatusOr<Tag>& expected, std::span<const uint8_t> tag) {
  if (!expected.ok()) return expected.status();
  if (!ConstantTimeEquals(*expected, tag)) {
    return UnauthenticatedError(kVerificationFailed);
  }
  return OkStatus();
}

// The prepared contexts of `keys` if it has them and they still match.
const crypto_internal::PreparedKeys* PreparedFor(const SymmetricKeys& keys) {
  return crypto_internal::PreparedKeys::For(keys);
}

}  // namespace

Status RandomBytes(std::span<uint8_t> out) {
  if (out.empty()) return OkStatus();
  if (RAND_bytes(out.data(), static_cast<int>(out.size())) != 1) {
    return InternalError("RAND_bytes failed");
  }
  return OkStatus();
}

StatusOr<SecretBytes> RandomSecret(size_t n) {
  SecretBytes s(n);
  KGR_RETURN_IF_ERROR(RandomBytes(s.mutable_span()));
  return s;
}

namespace {

// Forks seen by this process (pthread_atfork child handler): a thread's
// block of public random bytes belongs to the fork generation it was drawn
// in, so a child never hands out bytes its parent also hands out. (Cheaper
// than a getpid() system call per value.)
std::atomic<uint64_t> g_fork_generation{0};

uint64_t ForkGeneration() {
  static const bool registered = [] {
    pthread_atfork(nullptr, nullptr, [] {
      g_fork_generation.fetch_add(1, std::memory_order_relaxed);
    });
    return true;
  }();
  (void)registered;
  return g_fork_generation.load(std::memory_order_relaxed);
}

}  // namespace

Status RandomPublicBytes(std::span<uint8_t> out) {
  struct Pool {
    std::array<uint8_t, 4096> bytes;
    size_t next = sizeof bytes;  // empty
    uint64_t generation = 0;
  };
  if (out.size() > 256) return RandomBytes(out);
  thread_local Pool pool;
  const uint64_t generation = ForkGeneration();
  if (pool.bytes.size() - pool.next < out.size() ||
      pool.generation != generation) {
    KGR_RETURN_IF_ERROR(RandomBytes(pool.bytes));
    pool.next = 0;
    pool.generation = generation;
  }
  std::copy_n(pool.bytes.begin() + pool.next, out.size(), out.begin());
  // Handed out once: wipe it from the block.
  std::fill_n(pool.bytes.begin() + pool.next, out.size(), 0);
  pool.next += out.size();
  return OkStatus();
}

namespace crypto_internal {

StatusOr<Iv> RandomIv() {
  Iv iv;
  KGR_RETURN_IF_ERROR(RandomPublicBytes(iv));
  return iv;
}

namespace {
thread_local const Iv* t_fixed_iv = nullptr;  // SetThreadFixedIv
}  // namespace

void SetThreadFixedIv(const Iv* iv) { t_fixed_iv = iv; }

}  // namespace crypto_internal

StatusOr<uint64_t> RandomU64() {
  uint8_t b[8];
  KGR_RETURN_IF_ERROR(RandomPublicBytes(b));
  uint64_t v = 0;
  for (uint8_t c : b) v = (v << 8) | c;
  return v;
}

StatusOr<uint32_t> RandomU32() {
  uint8_t b[4];
  KGR_RETURN_IF_ERROR(RandomPublicBytes(b));
  return static_cast<uint32_t>(b[0]) << 24 | static_cast<uint32_t>(b[1]) << 16 |
         static_cast<uint32_t>(b[2]) << 8 | b[3];
}

void MixEntropy(std::span<const uint8_t> data) {
  if (data.empty()) return;
  RAND_add(data.data(), static_cast<int>(data.size()),
           static_cast<double>(data.size()));
}

StatusOr<SymmetricKeys> SymmetricKeys::Generate() {
  // One DRBG call for both keys (the call, not the bytes, is what costs).
  KGR_ASSIGN_OR_RETURN(SecretBytes both, RandomSecret(2 * kKeySize));
  return SymmetricKeys(SecretBytes(both.span().first(kKeySize)),
                       SecretBytes(both.span().subspan(kKeySize)));
}

StatusOr<SymmetricKeys> SymmetricKeys::FromBytes(std::span<const uint8_t> enc,
                                                 std::span<const uint8_t> mac) {
  if (enc.size() != kKeySize || mac.size() != kKeySize) {
    return InvalidArgumentError("key pair must be two 32-byte keys");
  }
  return SymmetricKeys{SecretBytes(enc), SecretBytes(mac)};
}

Status crypto_internal::AesCtr(const SecretBytes& key, const Iv& iv,
                               std::span<const uint8_t> in,
                               std::span<uint8_t> out) {
  if (key.size() != kKeySize) return InvalidArgumentError("AES key size");
  if (out.size() != in.size()) return InvalidArgumentError("AES output size");
  if (in.empty()) return OkStatus();
  EVP_CIPHER_CTX* ctx = ThreadCipherCtx();
  if (ctx == nullptr) return InternalError("AES-256-CTR unavailable");
  ScrubCipher scrub(ctx);
  int len = 0;
  if (EVP_EncryptInit_ex2(ctx, nullptr, key.data(), iv.data(), nullptr) != 1 ||
      EVP_EncryptUpdate(ctx, out.data(), &len, in.data(),
                        static_cast<int>(in.size())) != 1 ||
      static_cast<size_t>(len) != in.size()) {
    return InternalError("AES-256-CTR failed");
  }
  return OkStatus();
}

StatusOr<Tag> HmacSha256(
    const SecretBytes& key,
    std::initializer_list<std::span<const uint8_t>> parts) {
  if (key.size() != kKeySize) return InvalidArgumentError("HMAC key size");
  EVP_MAC_CTX* ctx = ThreadHmacCtx();
  if (ctx == nullptr) return InternalError("HMAC unavailable");
  ScrubHmac scrub(ctx);
  if (EVP_MAC_init(ctx, key.data(), key.size(), nullptr) != 1) {
    return InternalError("HMAC init failed");
  }
  for (auto p : parts) {
    if (!p.empty() && EVP_MAC_update(ctx, p.data(), p.size()) != 1) {
      return InternalError("HMAC update failed");
    }
  }
  Tag tag;
  size_t n = 0;
  if (EVP_MAC_final(ctx, tag.data(), &n, tag.size()) != 1 || n != tag.size()) {
    return InternalError("HMAC final failed");
  }
  return tag;
}

Status VerifyHmacSha256(const SecretBytes& key,
                        std::initializer_list<std::span<const uint8_t>> parts,
                        std::span<const uint8_t> tag) {
  return CheckTag(HmacSha256(key, parts), tag);
}

StatusOr<Tag> HmacSha256(
    const SymmetricKeys& keys,
    std::initializer_list<std::span<const uint8_t>> parts) {
  if (const auto* p = PreparedFor(keys)) return p->Hmac(parts);
  return HmacSha256(keys.RawMacKeyBytes(), parts);
}

Status VerifyHmacSha256(const SymmetricKeys& keys,
                        std::initializer_list<std::span<const uint8_t>> parts,
                        std::span<const uint8_t> tag) {
  return CheckTag(HmacSha256(keys, parts), tag);
}

Digest Sha256(std::initializer_list<std::span<const uint8_t>> parts) {
  Digest d{};
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  unsigned int n = 0;
  bool ok = ctx && Sha256Md() != nullptr &&
            EVP_DigestInit_ex2(ctx, Sha256Md(), nullptr) == 1;
  for (auto p : parts) {
    ok = ok && EVP_DigestUpdate(ctx, p.data(), p.size()) == 1;
  }
  ok = ok && EVP_DigestFinal_ex(ctx, d.data(), &n) == 1;
  EVP_MD_CTX_free(ctx);
  // SHA-256 cannot fail short of memory exhaustion; abort rather than return
  // a digest that is not one.
  if (!ok || n != d.size()) std::abort();
  return d;
}

StatusOr<SecretBytes> Hkdf(std::span<const uint8_t> ikm,
                           std::span<const uint8_t> salt,
                           std::span<const uint8_t> info, size_t length) {
  std::unique_ptr<EVP_KDF_CTX, KdfCtxFree> ctx(
      HkdfAlg() ? EVP_KDF_CTX_new(HkdfAlg()) : nullptr);
  if (!ctx) return InternalError("HKDF unavailable");
  char digest[] = "SHA256";
  // OSSL_PARAM wants non-const pointers; the KDF does not write through them.
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0),
      OSSL_PARAM_construct_octet_string(
          OSSL_KDF_PARAM_KEY, const_cast<uint8_t*>(ikm.data()), ikm.size()),
      OSSL_PARAM_construct_octet_string(
          OSSL_KDF_PARAM_SALT, const_cast<uint8_t*>(salt.data()), salt.size()),
      OSSL_PARAM_construct_octet_string(
          OSSL_KDF_PARAM_INFO, const_cast<uint8_t*>(info.data()), info.size()),
      OSSL_PARAM_construct_end()};
  SecretBytes out(length);
  if (EVP_KDF_derive(ctx.get(), out.data(), length, params) != 1) {
    return InternalError("HKDF failed");
  }
  return out;
}

StatusOr<SymmetricKeys> DeriveKeys(std::span<const uint8_t> ikm,
                                   std::span<const uint8_t> salt,
                                   std::span<const uint8_t> info) {
  KGR_ASSIGN_OR_RETURN(SecretBytes okm, Hkdf(ikm, salt, info, 2 * kKeySize));
  return SymmetricKeys::FromBytes(okm.span().first(kKeySize),
                                  okm.span().subspan(kKeySize));
}

Status SymmetricKeys::Prepare() {
  if (!valid()) return InvalidArgumentError("key pair size");
  KGR_ASSIGN_OR_RETURN(prepared_, crypto_internal::PreparedKeys::Create(*this));
  return OkStatus();
}

Status EtmSeal(const SymmetricKeys& keys, size_t iv_at,
               std::span<const uint8_t> plaintext, Bytes* out,
               size_t mac_from) {
  if (!keys.valid()) return InvalidArgumentError("key pair size");
  if (mac_from > out->size() || iv_at > out->size() ||
      out->size() - iv_at < kIvSize) {
    return InvalidArgumentError("EtmSeal: IV or MAC offset out of range");
  }
  Iv iv;
  if (const Iv* fixed = crypto_internal::t_fixed_iv) {
    iv = *fixed;  // tests only (crypto_testing::FixedIvScope)
  } else {
    KGR_ASSIGN_OR_RETURN(iv, crypto_internal::RandomIv());
  }
  std::copy(iv.begin(), iv.end(), out->begin() + iv_at);
  size_t ct_at = out->size();
  out->resize(ct_at + plaintext.size());
  std::span<uint8_t> ct = std::span<uint8_t>(*out).subspan(ct_at);
  std::span<const uint8_t> authenticated =
      std::span<const uint8_t>(*out).subspan(mac_from);
  Tag tag;
  if (const auto* p = PreparedFor(keys)) {
    KGR_RETURN_IF_ERROR(p->Aes(iv, plaintext, ct));
    KGR_ASSIGN_OR_RETURN(tag, p->Hmac(authenticated));
  } else {
    KGR_RETURN_IF_ERROR(
        crypto_internal::AesCtr(keys.RawEncKeyBytes(), iv, plaintext, ct));
    KGR_ASSIGN_OR_RETURN(tag,
                         HmacSha256(keys.RawMacKeyBytes(), {authenticated}));
  }
  out->insert(out->end(), tag.begin(), tag.end());
  return OkStatus();
}

StatusOr<SecretBytes> EtmOpen(const SymmetricKeys& keys,
                              std::span<const uint8_t> authenticated,
                              size_t iv_at, size_t ciphertext_at,
                              std::span<const uint8_t> tag) {
  if (!keys.valid()) return InvalidArgumentError("key pair size");
  if (iv_at > ciphertext_at || ciphertext_at - iv_at < kIvSize ||
      ciphertext_at > authenticated.size()) {
    return InvalidArgumentError("EtmOpen: IV or ciphertext offset");
  }
  Iv iv;
  std::copy_n(authenticated.begin() + iv_at, kIvSize, iv.begin());
  std::span<const uint8_t> ciphertext = authenticated.subspan(ciphertext_at);
  if (const auto* p = PreparedFor(keys)) {
    KGR_RETURN_IF_ERROR(CheckTag(p->Hmac(authenticated), tag));
    SecretBytes pt(ciphertext.size());
    KGR_RETURN_IF_ERROR(p->Aes(iv, ciphertext, pt.mutable_span()));
    return pt;
  }
  KGR_RETURN_IF_ERROR(
      VerifyHmacSha256(keys.RawMacKeyBytes(), {authenticated}, tag));
  SecretBytes pt(ciphertext.size());
  KGR_RETURN_IF_ERROR(crypto_internal::AesCtr(keys.RawEncKeyBytes(), iv,
                                              ciphertext, pt.mutable_span()));
  return pt;
}

namespace {
struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct PkeyCtxFree {
  void operator()(EVP_PKEY_CTX* c) const { EVP_PKEY_CTX_free(c); }
};
}  // namespace

StatusOr<X25519KeyPair> GenerateX25519() {
  std::unique_ptr<EVP_PKEY, PkeyFree> key(
      EVP_PKEY_Q_keygen(nullptr, nullptr, "X25519"));
  if (!key) return InternalError("X25519 key generation failed");
  X25519KeyPair kp;
  kp.private_key = SecretBytes(kX25519Size);
  kp.public_key.resize(kX25519Size);
  size_t priv_len = kX25519Size, pub_len = kX25519Size;
  if (EVP_PKEY_get_raw_private_key(key.get(), kp.private_key.data(),
                                   &priv_len) != 1 ||
      EVP_PKEY_get_raw_public_key(key.get(), kp.public_key.data(), &pub_len) !=
          1 ||
      priv_len != kX25519Size || pub_len != kX25519Size) {
    return InternalError("X25519 key export failed");
  }
  return kp;
}

StatusOr<SecretBytes> X25519SharedSecret(const SecretBytes& private_key,
                                         std::span<const uint8_t> peer_public) {
  if (private_key.size() != kX25519Size || peer_public.size() != kX25519Size) {
    return InvalidArgumentError("X25519 keys are 32 bytes");
  }
  std::unique_ptr<EVP_PKEY, PkeyFree> priv(EVP_PKEY_new_raw_private_key(
      EVP_PKEY_X25519, nullptr, private_key.data(), private_key.size()));
  std::unique_ptr<EVP_PKEY, PkeyFree> peer(EVP_PKEY_new_raw_public_key(
      EVP_PKEY_X25519, nullptr, peer_public.data(), peer_public.size()));
  if (!priv || !peer) return InvalidArgumentError("bad X25519 key");
  std::unique_ptr<EVP_PKEY_CTX, PkeyCtxFree> ctx(
      EVP_PKEY_CTX_new(priv.get(), nullptr));
  SecretBytes shared(kX25519Size);
  size_t len = shared.size();
  if (!ctx || EVP_PKEY_derive_init(ctx.get()) != 1 ||
      EVP_PKEY_derive_set_peer(ctx.get(), peer.get()) != 1 ||
      EVP_PKEY_derive(ctx.get(), shared.data(), &len) != 1 ||
      len != kX25519Size) {
    // A low-order peer key yields an all-zero secret, refused by OpenSSL.
    return InvalidArgumentError("X25519 agreement failed");
  }
  return shared;
}

}  // namespace kgr
