#include "mqtt/paho_status.h"

#include <MQTTAsync.h>

#include <string>

namespace kgr::mqtt_internal {
namespace {

constexpr int kSubackFailure = 0x80;  // MQTT 3.1.1 SUBACK "Failure"

}  // namespace

Status PahoStatus(MqttOp op, int rc, std::string_view detail) {
  if (rc == MQTTASYNC_SUCCESS) return OkStatus();
  std::string msg = std::string(MqttOpName(op)) + ": rc " + std::to_string(rc);
  if (rc < 0) {
    const char* text = MQTTAsync_strerror(rc);
    if (text != nullptr) msg += std::string(" (") + text + ")";
  }
  if (!detail.empty()) msg += ": " + std::string(detail);

  if (op == MqttOp::kConnect) {
    // CONNACK 4 (bad user name or password) and 5 (not authorized): the
    // broker refuses this identity; retrying does not help.
    if (rc == 4 || rc == 5) return PermissionDeniedError(std::move(msg));
    // Everything else while connecting (TCP, TLS handshake, CONNACK 1-3,
    // timeout) is a connection problem.
    return UnavailableError(std::move(msg));
  }
  if (op == MqttOp::kSubscribe && rc >= kSubackFailure) {
    return PermissionDeniedError(msg + ": refused by the broker");
  }
  switch (rc) {
    case MQTTASYNC_DISCONNECTED:
    case MQTTASYNC_FAILURE:  // e.g. the socket broke under the operation
      return UnavailableError(std::move(msg));
    case MQTTASYNC_MAX_MESSAGES_INFLIGHT:
    case MQTTASYNC_MAX_BUFFERED_MESSAGES:
    case MQTTASYNC_MAX_BUFFERED:
    case MQTTASYNC_NO_MORE_MSGIDS:
      return ResourceExhaustedError(std::move(msg));
    case MQTTASYNC_BAD_UTF8_STRING:
    case MQTTASYNC_NULL_PARAMETER:
    case MQTTASYNC_TOPICNAME_TRUNCATED:
    case MQTTASYNC_BAD_QOS:
      return InvalidArgumentError(std::move(msg));
    default:
      return InternalError(std::move(msg));
  }
}

}  // namespace kgr::mqtt_internal
