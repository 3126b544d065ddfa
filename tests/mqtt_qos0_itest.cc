// MQTT QoS 0 (mqtt_qos 0) over the real TLS Mosquitto with the project's
// configuration, both client libraries: frames flow both ways, a persistent
// session still gets what was published while it was away (here at QoS 1
// as well), and a publish while the broker is away is held, not an error.
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <tuple>

#include "gtest/gtest.h"
#include "kgr/mqtt.h"
#include "kgr/transport.h"
#include "mqtt_fixture.h"

namespace kgr {
namespace mqtt_test {
namespace {

class MqttQos0ITest : public MqttITest {
 protected:
  int qos() const override { return 0; }
  // A connected QoS 0 transport for `cn` (ks, n0a1b2c3d) subscribed to
  // kgr/<cn>/in.
  Transport* Subscribed(const std::string& cn, Inbox* inbox) {
    auto opts = Options(cn);
    EXPECT_TRUE(opts.ok()) << opts.status().ToString();
    if (!opts.ok()) return nullptr;
    Transport* t = ConnectWith(*opts, inbox);
    if (t != nullptr) {
      EXPECT_TRUE(t->Subscribe("kgr/" + cn + "/in").ok());
    }
    return t;
  }
};

TEST_P(MqttQos0ITest, FramesFlowBothWays) {
  Inbox& ks_in = NewInbox();
  Inbox& node_in = NewInbox();
  Transport* ks = Subscribed("ks", &ks_in);
  Transport* node = Subscribed("n0a1b2c3d", &node_in);
  ASSERT_NE(ks, nullptr);
  ASSERT_NE(node, nullptr);
  ASSERT_TRUE(node->Publish("kgr/ks/in", B("to-ks")).ok());
  EXPECT_TRUE(ks_in.WaitFor("to-ks"));
  ASSERT_TRUE(ks->Publish("kgr/n0a1b2c3d/in", B("to-node")).ok());
  EXPECT_TRUE(node_in.WaitFor("to-node"));
}

// A persistent session gets what was published while it was away, at QoS
// 1 and at QoS 0 (broker-config: queue_qos0_messages), so the KS's
// fire-and-forget frames (pair_revoked, nksk_rot_sig) reach a node that
// was offline.
class MqttSessionITest
    : public MqttBrokerTest,
      public ::testing::WithParamInterface<std::tuple<MqttClient, int>> {
 protected:
  MqttClient client() const override { return std::get<0>(GetParam()); }
  int qos() const override { return std::get<1>(GetParam()); }
};

TEST_P(MqttSessionITest, PersistentSessionQueuesWhileAway) {
  Inbox& ks_in = NewInbox();
  Inbox& node_in = NewInbox();
  Inbox& node_in2 = NewInbox();
  Transport* ks = Connect("ks", &ks_in);
  ASSERT_NE(ks, nullptr);
  ASSERT_TRUE(ks->Subscribe("kgr/ks/in").ok());
  auto opts = Options("n0a1b2c3d");
  ASSERT_TRUE(opts.ok());
  {
    auto node = NewMqttTransport(*opts);
    ASSERT_TRUE(node.ok());
    (*node)->SetHandler(node_in.Handler());
    ASSERT_TRUE((*node)->Connect().ok());
    ASSERT_TRUE((*node)->Subscribe("kgr/n0a1b2c3d/in").ok());
    ASSERT_TRUE((*node)->Disconnect().ok());
  }
  ASSERT_TRUE(ks->Publish("kgr/n0a1b2c3d/in", B("while-away")).ok());
  // The broker has handled the first publish once it routed the second.
  ASSERT_TRUE(ks->Publish("kgr/ks/in", B("sync")).ok());
  ASSERT_TRUE(ks_in.WaitFor("sync"));
  // Same client id, no Subscribe: the broker kept session and message.
  Transport* node = ConnectWith(*opts, &node_in2);
  ASSERT_NE(node, nullptr);
  EXPECT_TRUE(node_in2.WaitFor("while-away"));
}

INSTANTIATE_TEST_SUITE_P(
    ClientsAndQos, MqttSessionITest,
    ::testing::Combine(BothClients(), ::testing::Values(0, 1)),
    [](const auto& info) {
      return std::string(MqttClientName(std::get<0>(info.param))) + "_qos" +
             std::to_string(std::get<1>(info.param));
    });

// A frame published while the broker is away is not an error at QoS 0
// either (the node's first nnsk_key_req of a renewal used to fail with
// "reconnecting (QoS 0 dropped)" instead of being retransmitted): it is
// held and sent after the reconnect, as at QoS 1.
TEST_P(MqttQos0ITest, PublishWhileTheBrokerIsAwayIsNotAnError) {
  Inbox& ks_in = NewInbox();
  Inbox& node_in = NewInbox();
  Transport* ks = Subscribed("ks", &ks_in);
  Transport* node = Subscribed("n0a1b2c3d", &node_in);
  ASSERT_NE(ks, nullptr);
  ASSERT_NE(node, nullptr);
  broker_->Stop();
  // Through the loss of the connection and into the reconnect back-off.
  for (int i = 0; i < 40; ++i) {
    Status s = node->Publish("kgr/ks/in", B("away" + std::to_string(i)));
    EXPECT_TRUE(s.ok()) << i << ": " << s.ToString();
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  Status s = broker_->Start();
  ASSERT_TRUE(s.ok()) << s.ToString();
  // Both ends are back: a frame published now arrives.
  const auto deadline = Clock::now() + std::chrono::seconds(30);
  bool back = false;
  for (int i = 0; !back && Clock::now() < deadline; ++i) {
    const std::string probe = "back" + std::to_string(i);
    EXPECT_TRUE(node->Publish("kgr/ks/in", B(probe)).ok());
    back = ks_in.WaitFor(probe, std::chrono::milliseconds(500));
  }
  EXPECT_TRUE(back);
}

INSTANTIATE_TEST_SUITE_P(Clients, MqttQos0ITest, BothClients(), ClientName);

}  // namespace
}  // namespace mqtt_test
}  // namespace kgr
