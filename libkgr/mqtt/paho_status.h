// The one place where Paho return codes become Status.
#ifndef KGR_MQTT_PAHO_STATUS_H_
#define KGR_MQTT_PAHO_STATUS_H_

#include <string_view>

#include "kgr/status.h"
#include "mqtt/mqtt_common.h"

namespace kgr::mqtt_internal {

// Maps a Paho C/C++ return code (MQTTASYNC_*, CONNACK codes 1-5, SUBACK
// 0x80) plus Paho's message (may be empty) to a Status. `rc` 0 yields OK.
Status PahoStatus(MqttOp op, int rc, std::string_view detail);

}  // namespace kgr::mqtt_internal

#endif  // KGR_MQTT_PAHO_STATUS_H_
