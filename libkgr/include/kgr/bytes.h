// Big-endian byte writer and strict reader used by every codec in libkgr.
//
// ByteReader never reads past its input: every Read* returns false (and
// leaves the reader in a failed state) on a short input; callers turn that
// into an INVALID_ARGUMENT status. Not thread-safe.
#ifndef KGR_BYTES_H_
#define KGR_BYTES_H_

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "kgr/secret.h"

namespace kgr {

using Bytes = std::vector<uint8_t>;

class ByteWriter {
 public:
  explicit ByteWriter(Bytes* out) : out_(out) {}
  void U8(uint8_t v) { out_->push_back(v); }
  void U16(uint16_t v);
  void U32(uint32_t v);
  void U64(uint64_t v);
  void Raw(std::span<const uint8_t> v) {
    out_->insert(out_->end(), v.begin(), v.end());
  }
  void Str(std::string_view s) {
    Raw({reinterpret_cast<const uint8_t*>(s.data()), s.size()});
  }

 private:
  Bytes* out_;
};

class ByteReader {
 public:
  explicit ByteReader(std::span<const uint8_t> in) : in_(in) {}
  bool U8(uint8_t* v);
  bool U16(uint16_t* v);
  bool U32(uint32_t* v);
  bool U64(uint64_t* v);
  // Views the next `n` bytes (valid while the input lives).
  bool View(size_t n, std::span<const uint8_t>* v);
  bool Raw(size_t n, Bytes* v);
  bool Secret(size_t n, SecretBytes* v);
  size_t remaining() const { return in_.size() - pos_; }
  size_t position() const { return pos_; }
  bool done() const { return pos_ == in_.size(); }

 private:
  std::span<const uint8_t> in_;
  size_t pos_ = 0;
};

// Lower-case hex, for logs of non-secret values (ids, topics) and tests.
std::string ToHex(std::span<const uint8_t> b);
// Fails (returns false) on odd length or a non-hex digit.
bool FromHex(std::string_view hex, Bytes* out);

inline std::span<const uint8_t> AsBytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

}  // namespace kgr

#endif  // KGR_BYTES_H_
