// Unit tests of the MQTT transport that need no broker. The real broker
// is exercised by tests/mqtt_itest.cc.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gtest/gtest.h"
#include "kgr/mqtt.h"

namespace kgr {
namespace {

// A loopback port with nothing listening (bound, never listen()ed).
class ClosedPort {
 public:
  ClosedPort() {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    bind(fd_, reinterpret_cast<sockaddr*>(&a), len);
    getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
  }
  ~ClosedPort() { close(fd_); }
  int port() const { return port_; }

 private:
  int fd_ = -1, port_ = 0;
};

MqttOptions Plain(int port) {
  MqttOptions o;
  o.tls = false;
  o.port = port;
  o.connect_timeout_ms = 2000;
  return o;
}

TEST(NewMqttTransportTest, RejectsBadOptions) {
  auto code = [](MqttOptions o) { return NewMqttTransport(o).status().code(); };
  MqttOptions o = Plain(1883);
  o.port = 0;
  EXPECT_EQ(code(o), StatusCode::kInvalidArgument);
  o = Plain(1883);
  o.qos = 3;
  EXPECT_EQ(code(o), StatusCode::kInvalidArgument);
  o = Plain(1883);
  o.host.clear();
  EXPECT_EQ(code(o), StatusCode::kInvalidArgument);
  o = Plain(1883);
  o.connect_timeout_ms = 0;
  EXPECT_EQ(code(o), StatusCode::kInvalidArgument);
  o = Plain(1883);
  o.reconnect_max_s = 0;
  EXPECT_EQ(code(o), StatusCode::kInvalidArgument);
  o = Plain(1883);
  o.ca_file = "/etc/hostname";  // certificate files need tls
  EXPECT_EQ(code(o), StatusCode::kInvalidArgument);

  MqttOptions t;
  EXPECT_EQ(code(t), StatusCode::kInvalidArgument);  // tls without ca_file
  t.ca_file = "/nonexistent/ca.crt";
  EXPECT_EQ(code(t), StatusCode::kNotFound);
  t.ca_file = "/etc/hostname";  // readable; contents are Paho's business
  t.cert_file = "/etc/hostname";
  EXPECT_EQ(code(t), StatusCode::kInvalidArgument);  // key_file missing
  t.key_file = "/nonexistent/key.pem";
  EXPECT_EQ(code(t), StatusCode::kNotFound);
  t.key_file = "/etc/hostname";
  EXPECT_TRUE(NewMqttTransport(t).ok());
}

TEST(MqttTransportTest, NothingWorksBeforeConnect) {
  auto t = NewMqttTransport(Plain(1883));
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  const uint8_t p[] = {1};
  EXPECT_EQ((*t)->Publish("kgr/x", p).code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ((*t)->Subscribe("kgr/x").code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ((*t)->Unsubscribe("kgr/x").code(), StatusCode::kFailedPrecondition);
  EXPECT_TRUE((*t)->Disconnect().ok());  // idempotent
}

TEST(MqttTransportTest, BadTopicsAreInvalidArgument) {
  auto t = NewMqttTransport(Plain(1883));
  ASSERT_TRUE(t.ok());
  const uint8_t p[] = {1};
  EXPECT_EQ((*t)->Publish("kgr/+/x", p).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ((*t)->Publish("kgr/#", p).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ((*t)->Publish("", p).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ((*t)->Publish(std::string("a\0b", 3), p).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ((*t)->Subscribe("kgr/#/x").code(), StatusCode::kInvalidArgument);
  EXPECT_EQ((*t)->Subscribe("kgr/a#").code(), StatusCode::kInvalidArgument);
  EXPECT_EQ((*t)->Subscribe("kgr/a+/b").code(), StatusCode::kInvalidArgument);
}

TEST(MqttTransportTest, ConnectToClosedPortIsUnavailable) {
  ClosedPort closed;
  auto t = NewMqttTransport(Plain(closed.port()));
  ASSERT_TRUE(t.ok());
  Status s = (*t)->Connect();
  EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s.ToString();
  // A second attempt behaves the same (no stale state).
  EXPECT_EQ((*t)->Connect().code(), StatusCode::kUnavailable);
}

TEST(MqttTransportTest, ConnectTimesOutAgainstSilentPeer) {
  // A listener that accepts TCP but never answers CONNECT.
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&a), len), 0);
  ASSERT_EQ(listen(fd, 4), 0);
  ASSERT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len), 0);
  MqttOptions o = Plain(ntohs(a.sin_port));
  o.connect_timeout_ms = 300;
  auto t = NewMqttTransport(o);
  ASSERT_TRUE(t.ok());
  Status s = (*t)->Connect();
  EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s.ToString();
  t->reset();
  close(fd);
}

}  // namespace
}  // namespace kgr
