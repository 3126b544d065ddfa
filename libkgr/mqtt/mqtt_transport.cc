// NewMqttTransport: validates the options and builds the chosen back end.
#include <memory>
#include <string>
#include <string_view>

#include "kgr/mqtt.h"
#include "mqtt/mqtt_common.h"

namespace kgr {

StatusOr<std::unique_ptr<Transport>> NewMqttTransport(
    const MqttOptions& options) {
  if (options.host.empty()) {
    return InvalidArgumentError("mqtt: host is empty");
  }
  if (options.port < 1 || options.port > 65535) {
    return InvalidArgumentError("mqtt: port must be 1..65535");
  }
  if (options.qos < 0 || options.qos > 2) {
    return InvalidArgumentError("mqtt: qos must be 0, 1 or 2");
  }
  if (options.keepalive_s < 0 || options.keepalive_s > 65535) {
    return InvalidArgumentError("mqtt: keepalive_s must be 0..65535");
  }
  if (options.connect_timeout_ms <= 0) {
    return InvalidArgumentError("mqtt: connect_timeout_ms must be > 0");
  }
  if (options.reconnect_min_s < 1 ||
      options.reconnect_max_s < options.reconnect_min_s) {
    return InvalidArgumentError(
        "mqtt: need 1 <= reconnect_min_s <= reconnect_max_s");
  }
  if (options.max_buffered_messages < 1) {
    return InvalidArgumentError("mqtt: max_buffered_messages must be >= 1");
  }
  if (options.client_id.size() > 65535) {
    return InvalidArgumentError("mqtt: client_id too long");
  }
  if (options.tls) {
    if (options.ca_file.empty()) {
      return InvalidArgumentError("mqtt: tls needs ca_file");
    }
    if (options.cert_file.empty() != options.key_file.empty()) {
      return InvalidArgumentError("mqtt: cert_file and key_file go together");
    }
    KGR_RETURN_IF_ERROR(
        mqtt_internal::CheckReadable(options.ca_file, "ca_file"));
    if (!options.cert_file.empty()) {
      KGR_RETURN_IF_ERROR(
          mqtt_internal::CheckReadable(options.cert_file, "cert_file"));
      KGR_RETURN_IF_ERROR(
          mqtt_internal::CheckReadable(options.key_file, "key_file"));
    }
  } else if (!options.ca_file.empty() || !options.cert_file.empty() ||
             !options.key_file.empty()) {
    return InvalidArgumentError("mqtt: certificate files given without tls");
  }
  switch (options.client) {
    case MqttClient::kPaho:
      return mqtt_internal::NewPahoTransport(options);
    case MqttClient::kMosquitto:
      return mqtt_internal::NewMosquittoTransport(options);
  }
  return InvalidArgumentError("mqtt: unknown client library");
}

StatusOr<MqttClient> ParseMqttClient(std::string_view name) {
  if (name == "paho") return MqttClient::kPaho;
  if (name == "mosquitto") return MqttClient::kMosquitto;
  return InvalidArgumentError(
      "mqtt: client must be 'paho' or 'mosquitto', not '" + std::string(name) +
      "'");
}

std::string_view MqttClientName(MqttClient client) {
  return client == MqttClient::kPaho ? "paho" : "mosquitto";
}

}  // namespace kgr
