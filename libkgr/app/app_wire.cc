// The application API's frames, base64 and the daemon-to-daemon envelope
// (kgr/app_wire.h, docs/api.md).
#include "kgr/app_wire.h"

#include <array>

namespace kgr {
namespace {

constexpr char kAlphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
constexpr char kMagic[3] = {'k', 'g', 'A'};

// The value of a base64 character; -1 outside the alphabet.
int Base64Value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

Bytes Wrap(uint8_t code, const Bytes& data) {
  Bytes out(kMagic, kMagic + sizeof(kMagic));
  out.push_back(code);
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

}  // namespace

std::string EncodeAppFrame(const nlohmann::json& message) {
  std::string text = message.dump();
  uint32_t n = static_cast<uint32_t>(text.size());
  std::string out;
  out.reserve(4 + text.size());
  for (int shift = 24; shift >= 0; shift -= 8) {
    out.push_back(static_cast<char>((n >> shift) & 0xff));
  }
  out += text;
  return out;
}

StatusOr<std::optional<nlohmann::json>> AppFrameReader::Next() {
  if (buffer_.size() < 4) return std::optional<nlohmann::json>();
  uint32_t n = 0;
  for (int i = 0; i < 4; ++i) {
    n = (n << 8) | static_cast<uint8_t>(buffer_[i]);
  }
  if (n == 0 || n > kAppMaxFrame) {
    return InvalidArgumentError("frame length " + std::to_string(n) +
                                " outside 1.." + std::to_string(kAppMaxFrame));
  }
  if (buffer_.size() < 4 + size_t{n}) return std::optional<nlohmann::json>();
  nlohmann::json m = nlohmann::json::parse(
      buffer_.begin() + 4, buffer_.begin() + 4 + n, nullptr, false);
  buffer_.erase(0, 4 + size_t{n});
  if (m.is_discarded()) return InvalidArgumentError("frame is not JSON");
  if (!m.is_object()) return InvalidArgumentError("frame is not a JSON object");
  return std::optional<nlohmann::json>(std::move(m));
}

std::string Base64Encode(const Bytes& bytes) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  for (size_t i = 0; i < bytes.size(); i += 3) {
    uint32_t v = uint32_t{bytes[i]} << 16;
    size_t left = bytes.size() - i;
    if (left > 1) v |= uint32_t{bytes[i + 1]} << 8;
    if (left > 2) v |= bytes[i + 2];
    out.push_back(kAlphabet[(v >> 18) & 63]);
    out.push_back(kAlphabet[(v >> 12) & 63]);
    out.push_back(left > 1 ? kAlphabet[(v >> 6) & 63] : '=');
    out.push_back(left > 2 ? kAlphabet[v & 63] : '=');
  }
  return out;
}

StatusOr<Bytes> Base64Decode(std::string_view text) {
  if (text.size() % 4 != 0) {
    return InvalidArgumentError("base64 length is not a multiple of 4");
  }
  Bytes out;
  out.reserve(text.size() / 4 * 3);
  for (size_t i = 0; i < text.size(); i += 4) {
    bool last = i + 4 == text.size();
    int pad = 0;
    std::array<int, 4> v{};
    for (int j = 0; j < 4; ++j) {
      char c = text[i + j];
      if (c == '=' && last && j >= 2) {
        ++pad;
        v[j] = 0;
        continue;
      }
      v[j] = Base64Value(c);
      if (v[j] < 0 || pad > 0) {
        return InvalidArgumentError("bad base64 character at offset " +
                                    std::to_string(i + j));
      }
    }
    uint32_t w = (v[0] << 18) | (v[1] << 12) | (v[2] << 6) | v[3];
    out.push_back(static_cast<uint8_t>(w >> 16));
    if (pad < 2) out.push_back(static_cast<uint8_t>(w >> 8));
    if (pad < 1) out.push_back(static_cast<uint8_t>(w));
  }
  return out;
}

StatusOr<std::string> AppStringField(const nlohmann::json& m,
                                     std::string_view name) {
  auto it = m.find(name);
  if (it == m.end() || !it->is_string()) {
    return InvalidArgumentError("field '" + std::string(name) +
                                "' missing or not a string");
  }
  return it->get<std::string>();
}

StatusOr<uint64_t> AppUintField(const nlohmann::json& m, std::string_view name,
                                std::optional<uint64_t> fallback) {
  auto it = m.find(name);
  if (it == m.end() && fallback.has_value()) return *fallback;
  if (it == m.end() || !it->is_number_unsigned()) {
    return InvalidArgumentError("field '" + std::string(name) +
                                "' missing or not a non-negative integer");
  }
  return it->get<uint64_t>();
}

StatusOr<Bytes> AppDataField(const nlohmann::json& m, std::string_view name) {
  KGR_ASSIGN_OR_RETURN(std::string text, AppStringField(m, name));
  if (text.size() > (kAppMaxData + 2) / 3 * 4) {
    return InvalidArgumentError("field '" + std::string(name) +
                                "' longer than " + std::to_string(kAppMaxData) +
                                " bytes");
  }
  auto bytes = Base64Decode(text);
  if (!bytes.ok()) {
    return InvalidArgumentError("field '" + std::string(name) +
                                "': " + bytes.status().message());
  }
  if (bytes->size() > kAppMaxData) {
    return InvalidArgumentError("field '" + std::string(name) +
                                "' longer than " + std::to_string(kAppMaxData) +
                                " bytes");
  }
  return bytes;
}

StatusOr<uint32_t> AppPeerField(const nlohmann::json& m,
                                std::string_view name) {
  KGR_ASSIGN_OR_RETURN(std::string text, AppStringField(m, name));
  uint32_t v = 0;
  bool hex = text.size() == 8;
  for (char c : text) {
    int d = c >= '0' && c <= '9'   ? c - '0'
            : c >= 'a' && c <= 'f' ? c - 'a' + 10
            : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                   : -1;
    if (d < 0) hex = false;
    v = (v << 4) | static_cast<uint32_t>(d & 15);
  }
  if (!hex) {
    return InvalidArgumentError("field '" + std::string(name) +
                                "' is not an N_ID (8 hex digits)");
  }
  return v;
}

Bytes WrapAppMessage(AppKind kind, const Bytes& data) {
  return Wrap(static_cast<uint8_t>(kind), data);
}

Bytes WrapAppAnswer(AppAnswer status, const Bytes& data) {
  return Wrap(static_cast<uint8_t>(status), data);
}

std::optional<AppEnvelope> UnwrapApp(const Bytes& frame_data) {
  if (frame_data.size() < kAppEnvelopeSize ||
      !std::equal(kMagic, kMagic + sizeof(kMagic), frame_data.begin())) {
    return std::nullopt;
  }
  AppEnvelope e;
  e.code = frame_data[3];
  e.data.assign(frame_data.begin() + kAppEnvelopeSize, frame_data.end());
  return e;
}

}  // namespace kgr
