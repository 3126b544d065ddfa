// The one place where libmosquitto return codes become Status.
#ifndef KGR_MQTT_MOSQUITTO_STATUS_H_
#define KGR_MQTT_MOSQUITTO_STATUS_H_

#include <string_view>

#include "kgr/status.h"
#include "mqtt/mqtt_common.h"

namespace kgr::mqtt_internal {

// Maps a MOSQ_ERR_* code plus a detail (may be empty: the library's last
// logged error, the OS error) to a Status. MOSQ_ERR_SUCCESS yields OK.
// Connection problems (TCP, TLS, lost connection, keepalive) are
// UNAVAILABLE; refusals by the broker PERMISSION_DENIED.
Status MosquittoStatus(MqttOp op, int rc, std::string_view detail);

// The CONNACK return code `connack` (1..5) of a refused CONNECT: 4 and 5
// (bad credentials, not authorized) are PERMISSION_DENIED, others
// UNAVAILABLE.
Status ConnackStatus(int connack, std::string_view detail);

}  // namespace kgr::mqtt_internal

#endif  // KGR_MQTT_MOSQUITTO_STATUS_H_
