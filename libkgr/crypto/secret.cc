#include "kgr/secret.h"

#include <openssl/crypto.h>

#include <cstring>
#include <new>

namespace kgr {

SecretBytes::SecretBytes(size_t n) {
  if (n == 0) return;
  data_ = new uint8_t[n]();
  size_ = n;
}

SecretBytes::SecretBytes(std::span<const uint8_t> data) {
  if (data.empty()) return;
  data_ = new uint8_t[data.size()];
  std::memcpy(data_, data.data(), data.size());
  size_ = data.size();
}

SecretBytes::~SecretBytes() { Clear(); }

SecretBytes::SecretBytes(SecretBytes&& other) noexcept
    : data_(other.data_), size_(other.size_) {
  other.data_ = nullptr;
  other.size_ = 0;
}

SecretBytes& SecretBytes::operator=(SecretBytes&& other) noexcept {
  if (this != &other) {
    Clear();
    data_ = other.data_;
    size_ = other.size_;
    other.data_ = nullptr;
    other.size_ = 0;
  }
  return *this;
}

void SecretBytes::Append(std::span<const uint8_t> more) {
  if (more.empty()) return;
  uint8_t* grown = new uint8_t[size_ + more.size()];
  if (size_ != 0) std::memcpy(grown, data_, size_);
  std::memcpy(grown + size_, more.data(), more.size());
  size_t n = size_ + more.size();
  Clear();
  data_ = grown;
  size_ = n;
}

void SecretBytes::Clear() {
  if (data_ != nullptr) {
    OPENSSL_cleanse(data_, size_);
    delete[] data_;
  }
  data_ = nullptr;
  size_ = 0;
}

bool SecretBytes::Equals(const SecretBytes& other) const {
  return ConstantTimeEquals(span(), other.span());
}

void WipeVector(std::vector<uint8_t>& v) {
  if (!v.empty()) OPENSSL_cleanse(v.data(), v.size());
  v.clear();
}

bool ConstantTimeEquals(std::span<const uint8_t> a,
                        std::span<const uint8_t> b) {
  if (a.size() != b.size()) return false;
  if (a.empty()) return true;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace kgr
