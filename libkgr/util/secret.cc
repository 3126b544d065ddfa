#include "kgr/secret.h"

#include <openssl/crypto.h>

#include <algorithm>
#include <cstring>
#include <new>

namespace kgr {

SecretBytes::SecretBytes(size_t n) {
  if (n == 0) return;
  data_ = new uint8_t[n]();
  size_ = capacity_ = n;
}

SecretBytes::SecretBytes(std::span<const uint8_t> data) {
  if (data.empty()) return;
  data_ = new uint8_t[data.size()];
  std::memcpy(data_, data.data(), data.size());
  size_ = capacity_ = data.size();
}

SecretBytes::~SecretBytes() { Clear(); }

SecretBytes::SecretBytes(SecretBytes&& other) noexcept
    : data_(other.data_), size_(other.size_), capacity_(other.capacity_) {
  other.data_ = nullptr;
  other.size_ = other.capacity_ = 0;
}

SecretBytes& SecretBytes::operator=(SecretBytes&& other) noexcept {
  if (this != &other) {
    Clear();
    data_ = other.data_;
    size_ = other.size_;
    capacity_ = other.capacity_;
    other.data_ = nullptr;
    other.size_ = other.capacity_ = 0;
  }
  return *this;
}

void SecretBytes::Grow(size_t capacity) {
  uint8_t* grown = new uint8_t[capacity];
  if (size_ != 0) std::memcpy(grown, data_, size_);
  size_t n = size_;
  Clear();
  data_ = grown;
  size_ = n;
  capacity_ = capacity;
}

void SecretBytes::Reserve(size_t n) {
  if (n > capacity_) Grow(n);
}

void SecretBytes::Append(std::span<const uint8_t> more) {
  if (more.empty()) return;
  if (capacity_ - size_ < more.size()) {
    Grow(std::max(size_ + more.size(), 2 * capacity_));
  }
  std::memcpy(data_ + size_, more.data(), more.size());
  size_ += more.size();
}

void SecretBytes::Clear() {
  if (data_ != nullptr) {
    OPENSSL_cleanse(data_, capacity_);
    delete[] data_;
  }
  data_ = nullptr;
  size_ = capacity_ = 0;
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
  // OR of the XORs, 8 bytes at a time (CRYPTO_memcmp goes byte by byte):
  // no branch on the data, and the barrier keeps the compiler from adding
  // one (an early exit) to the loop.
  uint64_t diff = 0;
  size_t i = 0;
  for (; i + 8 <= a.size(); i += 8) {
    uint64_t x, y;
    std::memcpy(&x, a.data() + i, 8);
    std::memcpy(&y, b.data() + i, 8);
    diff |= x ^ y;
    __asm__("" : "+r"(diff));
  }
  for (; i < a.size(); ++i) {
    diff |= static_cast<uint64_t>(a[i] ^ b[i]);
    __asm__("" : "+r"(diff));
  }
  return diff == 0;
}

}  // namespace kgr
