#include "mqtt/mosquitto_status.h"

#include <mosquitto.h>

#include <string>

namespace kgr::mqtt_internal {
Status MosquittoStatus(MqttOp op, int rc, std::string_view detail) {
  if (rc == MOSQ_ERR_SUCCESS) return OkStatus();
  std::string msg = std::string(MqttOpName(op)) + ": " + mosquitto_strerror(rc);
  if (!detail.empty()) msg += ": " + std::string(detail);
  switch (rc) {
    case MOSQ_ERR_NO_CONN:
    case MOSQ_ERR_CONN_LOST:
    case MOSQ_ERR_CONN_REFUSED:
    case MOSQ_ERR_ERRNO:
    case MOSQ_ERR_TLS:
    case MOSQ_ERR_TLS_HANDSHAKE:
    case MOSQ_ERR_KEEPALIVE:
    case MOSQ_ERR_EAI:
    case MOSQ_ERR_LOOKUP:
    case MOSQ_ERR_TIMEOUT:
    case MOSQ_ERR_PROTOCOL:
    case MOSQ_ERR_PROXY:
      return UnavailableError(std::move(msg));
    case MOSQ_ERR_AUTH:
    case MOSQ_ERR_ACL_DENIED:
      return PermissionDeniedError(std::move(msg));
    case MOSQ_ERR_NOMEM:
      return ResourceExhaustedError(std::move(msg));
    case MOSQ_ERR_INVAL:
    case MOSQ_ERR_PAYLOAD_SIZE:
    case MOSQ_ERR_OVERSIZE_PACKET:
    case MOSQ_ERR_MALFORMED_UTF8:
    case MOSQ_ERR_QOS_NOT_SUPPORTED:
      return InvalidArgumentError(std::move(msg));
    default:
      if (op == MqttOp::kConnect) return UnavailableError(std::move(msg));
      return InternalError(std::move(msg));
  }
}

Status ConnackStatus(int connack, std::string_view detail) {
  std::string msg = std::string("mqtt connect: refused by the broker: ") +
                    mosquitto_connack_string(connack);
  if (!detail.empty()) msg += ": " + std::string(detail);
  if (connack == 4 || connack == 5) return PermissionDeniedError(msg);
  return UnavailableError(msg);
}

}  // namespace kgr::mqtt_internal
