#include "mqtt/paho_status.h"

#include <MQTTAsync.h>

#include "gtest/gtest.h"

namespace kgr::mqtt_internal {
namespace {

TEST(PahoStatusTest, Success) {
  EXPECT_TRUE(PahoStatus(MqttOp::kPublish, MQTTASYNC_SUCCESS, "").ok());
}

TEST(PahoStatusTest, ConnectFailuresAreUnavailable) {
  EXPECT_EQ(PahoStatus(MqttOp::kConnect, MQTTASYNC_FAILURE, "TLS").code(),
            StatusCode::kUnavailable);
  EXPECT_EQ(PahoStatus(MqttOp::kConnect, 3, "").code(),  // server unavailable
            StatusCode::kUnavailable);
  EXPECT_EQ(PahoStatus(MqttOp::kConnect, 5, "").code(),  // not authorized
            StatusCode::kPermissionDenied);
}

TEST(PahoStatusTest, RefusedSubscribeIsPermissionDenied) {
  Status s = PahoStatus(MqttOp::kSubscribe, 0x80, "");
  EXPECT_EQ(s.code(), StatusCode::kPermissionDenied);
  EXPECT_NE(s.message().find("refused"), std::string::npos);
  EXPECT_EQ(PahoStatus(MqttOp::kSubscribe, 0x87, "").code(),  // v5 code
            StatusCode::kPermissionDenied);
}

TEST(PahoStatusTest, OtherCodes) {
  EXPECT_EQ(PahoStatus(MqttOp::kPublish, MQTTASYNC_DISCONNECTED, "").code(),
            StatusCode::kUnavailable);
  EXPECT_EQ(
      PahoStatus(MqttOp::kPublish, MQTTASYNC_MAX_BUFFERED_MESSAGES, "").code(),
      StatusCode::kResourceExhausted);
  EXPECT_EQ(PahoStatus(MqttOp::kPublish, MQTTASYNC_BAD_UTF8_STRING, "").code(),
            StatusCode::kInvalidArgument);
  Status s = PahoStatus(MqttOp::kPublish, MQTTASYNC_BAD_STRUCTURE, "detail");
  EXPECT_EQ(s.code(), StatusCode::kInternal);
  EXPECT_NE(s.message().find("detail"), std::string::npos);
  EXPECT_NE(s.message().find("mqtt publish"), std::string::npos);
}

}  // namespace
}  // namespace kgr::mqtt_internal
