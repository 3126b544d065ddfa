#include "mqtt/mqtt_common.h"

#include <unistd.h>

#include <cstdint>
#include <random>
#include <string>

namespace kgr::mqtt_internal {
namespace {

constexpr size_t kMaxTopicBytes = 65535;

}  // namespace

std::string_view MqttOpName(MqttOp op) {
  switch (op) {
    case MqttOp::kConnect:
      return "mqtt connect";
    case MqttOp::kSubscribe:
      return "mqtt subscribe";
    case MqttOp::kUnsubscribe:
      return "mqtt unsubscribe";
    case MqttOp::kPublish:
      return "mqtt publish";
    case MqttOp::kDisconnect:
      return "mqtt disconnect";
  }
  return "mqtt";
}

Status ValidateTopicName(const std::string& topic) {
  if (topic.empty() || topic.size() > kMaxTopicBytes) {
    return InvalidArgumentError("mqtt: topic length must be 1..65535");
  }
  if (topic.find_first_of(std::string("+#\0", 3)) != std::string::npos) {
    return InvalidArgumentError("mqtt: topic '" + topic +
                                "' has a wildcard or NUL; cannot publish");
  }
  return OkStatus();
}

// MQTT 3.1.1 section 4.7: '#' only as the whole last level, '+' only as a
// whole level.
Status ValidateTopicFilter(const std::string& filter) {
  if (filter.empty() || filter.size() > kMaxTopicBytes ||
      filter.find('\0') != std::string::npos) {
    return InvalidArgumentError("mqtt: bad topic filter");
  }
  size_t start = 0;
  while (true) {
    size_t end = filter.find('/', start);
    std::string level = filter.substr(
        start, end == std::string::npos ? std::string::npos : end - start);
    bool has_wild = level.find_first_of("+#") != std::string::npos;
    if (has_wild && level != "+" && level != "#") {
      return InvalidArgumentError("mqtt: bad wildcard in filter '" + filter +
                                  "'");
    }
    if (level == "#" && end != std::string::npos) {
      return InvalidArgumentError("mqtt: '#' must be last in '" + filter + "'");
    }
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return OkStatus();
}

Status CheckReadable(const std::string& path, const char* what) {
  if (::access(path.c_str(), R_OK) != 0) {
    return NotFoundError(std::string("mqtt: ") + what + " '" + path +
                         "' is not readable");
  }
  return OkStatus();
}

std::string RandomClientId() {
  // Not secret; only needs to be unique among the broker's clients.
  static const char kHex[] = "0123456789abcdef";
  std::random_device rd;
  std::string id = "kgr-";
  for (int i = 0; i < 4; ++i) {
    uint32_t x = rd();
    for (int j = 0; j < 8; ++j, x >>= 4) id += kHex[x & 15];
  }
  return id;
}

}  // namespace kgr::mqtt_internal
