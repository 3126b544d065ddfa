// SecretBytes: owned secret key material that is wiped (OPENSSL_cleanse) when
// released. Move-only; copies must be asked for with Clone() so that every
// copy of a key in memory is visible in the code. Never convert to
// std::string, never log.
//
// Thread safety: like std::vector (no internal locking).
#ifndef KGR_SECRET_H_
#define KGR_SECRET_H_

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace kgr {

class SecretBytes {
 public:
  SecretBytes() = default;
  // `n` zero bytes.
  explicit SecretBytes(size_t n);
  // Copies `data`; the caller wipes its own copy if it has one.
  explicit SecretBytes(std::span<const uint8_t> data);
  ~SecretBytes();

  SecretBytes(SecretBytes&& other) noexcept;
  SecretBytes& operator=(SecretBytes&& other) noexcept;
  SecretBytes(const SecretBytes&) = delete;
  SecretBytes& operator=(const SecretBytes&) = delete;

  SecretBytes Clone() const { return SecretBytes(span()); }

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  uint8_t* data() { return data_; }
  const uint8_t* data() const { return data_; }
  std::span<const uint8_t> span() const { return {data_, size_}; }
  std::span<uint8_t> mutable_span() { return {data_, size_}; }

  // Appends; reallocation (to at least twice the capacity) wipes the old
  // buffer.
  void Append(std::span<const uint8_t> more);
  // Makes room for `n` bytes in all, so that appends up to that size do not
  // reallocate.
  void Reserve(size_t n);
  // Wipes and empties (the whole buffer, spare capacity included).
  void Clear();

  // Constant-time comparison of contents (sizes are not secret).
  bool Equals(const SecretBytes& other) const;

 private:
  void Grow(size_t capacity);

  uint8_t* data_ = nullptr;
  size_t size_ = 0;
  size_t capacity_ = 0;  // of data_
};

// Wipes `v` (a buffer that briefly held secrets) and clears it.
void WipeVector(std::vector<uint8_t>& v);

// Constant-time equality of two byte strings (false when sizes differ).
bool ConstantTimeEquals(std::span<const uint8_t> a, std::span<const uint8_t> b);

}  // namespace kgr

#endif  // KGR_SECRET_H_
