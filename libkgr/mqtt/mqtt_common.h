// Helpers shared by the MQTT client back ends (Paho, libmosquitto), and the
// back ends' constructors. Internal to libkgr/mqtt.
#ifndef KGR_MQTT_MQTT_COMMON_H_
#define KGR_MQTT_MQTT_COMMON_H_

#include <memory>
#include <string>
#include <string_view>

#include "kgr/mqtt.h"
#include "kgr/status.h"
#include "kgr/transport.h"

namespace kgr::mqtt_internal {

// What a failed call was doing (connection problems map differently).
enum class MqttOp { kConnect, kSubscribe, kUnsubscribe, kPublish, kDisconnect };
// "mqtt connect", "mqtt publish", ...
std::string_view MqttOpName(MqttOp op);

// A topic we may publish to: 1..65535 bytes, no wildcard, no NUL.
Status ValidateTopicName(const std::string& topic);
// A subscription filter per MQTT 3.1.1 section 4.7.
Status ValidateTopicFilter(const std::string& filter);
// NOT_FOUND naming `what` unless `path` is readable by this process.
Status CheckReadable(const std::string& path, const char* what);
// "kgr-" and 32 random hex digits; not secret, only unique.
std::string RandomClientId();

// Back ends; `options` already validated by NewMqttTransport.
StatusOr<std::unique_ptr<Transport>> NewPahoTransport(
    const MqttOptions& options);
StatusOr<std::unique_ptr<Transport>> NewMosquittoTransport(
    const MqttOptions& options);

}  // namespace kgr::mqtt_internal

#endif  // KGR_MQTT_MQTT_COMMON_H_
