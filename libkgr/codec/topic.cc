#include "kgr/topic.h"

#include "kgr/crypto.h"

namespace kgr {

StatusOr<TopicId> RandomTopicId() {
  TopicId id;
  KGR_RETURN_IF_ERROR(RandomPublicBytes(id));
  return id;
}

std::string FormatNodeId(uint32_t n_id) {
  // By hand: every frame's topic names a node, and snprintf costs ~0.3 us.
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(8, '0');
  for (int i = 7; i >= 0; --i, n_id >>= 4) out[i] = kHex[n_id & 0xf];
  return out;
}

std::string NodeIdentity(uint32_t n_id) { return "n" + FormatNodeId(n_id); }

std::string Base32(const TopicId& id) {
  static const char kAlphabet[] = "abcdefghijklmnopqrstuvwxyz234567";
  std::string out;
  uint32_t buffer = 0;
  int bits = 0;
  for (uint8_t b : id) {
    buffer = (buffer << 8) | b;
    bits += 8;
    while (bits >= 5) {
      out.push_back(kAlphabet[(buffer >> (bits - 5)) & 31]);
      bits -= 5;
    }
  }
  if (bits > 0) out.push_back(kAlphabet[(buffer << (5 - bits)) & 31]);
  return out;
}

std::string TopicName(std::string_view prefix, std::string_view owner,
                      const TopicId& id) {
  std::string t(prefix);
  t += '/';
  t += owner;
  t += '/';
  t += Base32(id);
  return t;
}

std::string RegisterTopic(std::string_view prefix) {
  return std::string(prefix) + "/register";
}

std::string AcRequestTopic(std::string_view prefix) {
  return std::string(prefix) + "/ks/ac";
}

Status ValidateTopicPrefix(std::string_view prefix) {
  if (prefix.empty() || prefix.size() > 64) {
    return InvalidArgumentError("topic prefix must have 1 to 64 characters");
  }
  char prev = '/';
  for (char c : prefix) {
    bool word = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                (c >= '0' && c <= '9') || c == '_' || c == '-';
    if (c == '/' ? prev == '/' : !word) {
      return InvalidArgumentError(
          "topic prefix: only [A-Za-z0-9_-] segments separated by single '/'");
    }
    prev = c;
  }
  if (prev == '/') return InvalidArgumentError("topic prefix ends with '/'");
  return OkStatus();
}

}  // namespace kgr
