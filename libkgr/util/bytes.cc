#include "kgr/bytes.h"

namespace kgr {

namespace {
// Appends the `N` low bytes of `v`, most significant first, in one insert.
template <size_t N>
void AppendBigEndian(Bytes* out, uint64_t v) {
  uint8_t b[N];
  for (size_t i = 0; i < N; ++i)
    b[i] = static_cast<uint8_t>(v >> (8 * (N - 1 - i)));
  out->insert(out->end(), b, b + N);
}
}  // namespace

void ByteWriter::U16(uint16_t v) { AppendBigEndian<2>(out_, v); }
void ByteWriter::U32(uint32_t v) { AppendBigEndian<4>(out_, v); }
void ByteWriter::U64(uint64_t v) { AppendBigEndian<8>(out_, v); }

bool ByteReader::U8(uint8_t* v) {
  if (remaining() < 1) return false;
  *v = in_[pos_++];
  return true;
}
bool ByteReader::U16(uint16_t* v) {
  if (remaining() < 2) return false;
  *v = static_cast<uint16_t>((in_[pos_] << 8) | in_[pos_ + 1]);
  pos_ += 2;
  return true;
}
bool ByteReader::U32(uint32_t* v) {
  if (remaining() < 4) return false;
  uint32_t r = 0;
  for (int i = 0; i < 4; ++i) r = (r << 8) | in_[pos_ + i];
  pos_ += 4;
  *v = r;
  return true;
}
bool ByteReader::U64(uint64_t* v) {
  if (remaining() < 8) return false;
  uint64_t r = 0;
  for (int i = 0; i < 8; ++i) r = (r << 8) | in_[pos_ + i];
  pos_ += 8;
  *v = r;
  return true;
}
bool ByteReader::View(size_t n, std::span<const uint8_t>* v) {
  if (remaining() < n) return false;
  *v = in_.subspan(pos_, n);
  pos_ += n;
  return true;
}
bool ByteReader::Raw(size_t n, Bytes* v) {
  std::span<const uint8_t> s;
  if (!View(n, &s)) return false;
  v->assign(s.begin(), s.end());
  return true;
}
bool ByteReader::Secret(size_t n, SecretBytes* v) {
  std::span<const uint8_t> s;
  if (!View(n, &s)) return false;
  *v = SecretBytes(s);
  return true;
}

std::string ToHex(std::span<const uint8_t> b) {
  static const char kDigits[] = "0123456789abcdef";
  std::string s;
  s.reserve(b.size() * 2);
  for (uint8_t c : b) {
    s.push_back(kDigits[c >> 4]);
    s.push_back(kDigits[c & 15]);
  }
  return s;
}

static int HexVal(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool FromHex(std::string_view hex, Bytes* out) {
  if (hex.size() % 2 != 0) return false;
  Bytes r;
  r.reserve(hex.size() / 2);
  for (size_t i = 0; i < hex.size(); i += 2) {
    int hi = HexVal(hex[i]), lo = HexVal(hex[i + 1]);
    if (hi < 0 || lo < 0) return false;
    r.push_back(static_cast<uint8_t>(hi << 4 | lo));
  }
  *out = std::move(r);
  return true;
}

}  // namespace kgr
