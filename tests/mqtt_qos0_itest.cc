// MQTT QoS 0 (mqtt_qos 0) over the real TLS Mosquitto with the project's
// configuration, both client libraries: frames flow both ways, and a
// persistent session still gets what was published while it was away
// (broker-config: queue_qos0_messages), so the KS's fire-and-forget frames
// (pair_revoked, nksk_rot_sig) reach a node that was offline.
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "harness/mosquitto.h"
#include "harness/net.h"
#include "kgr/mqtt.h"
#include "kgr/transport.h"

namespace kgr {
namespace {

using harness::Mosquitto;

// The payloads a transport's handler received, as text.
class Received {
 public:
  Transport::Handler Handler() {
    return [this](const std::string&, Bytes payload) {
      std::lock_guard<std::mutex> lock(mu_);
      texts_.emplace_back(payload.begin(), payload.end());
      cv_.notify_all();
    };
  }
  bool WaitFor(const std::string& text,
               std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, timeout, [&] {
      for (const auto& t : texts_) {
        if (t == text) return true;
      }
      return false;
    });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::string> texts_;
};

Bytes B(const std::string& s) { return Bytes(s.begin(), s.end()); }

class MqttQos0ITest : public ::testing::TestWithParam<MqttClient> {
 protected:
  void SetUp() override {
    dir_ = harness::MakeTempDir("mqtt-qos0");
    ASSERT_FALSE(dir_.empty());
    broker_ = std::make_unique<Mosquitto>(dir_);
    Status s = broker_->Start();
    ASSERT_TRUE(s.ok()) << s.ToString();
  }
  void TearDown() override {
    transports_.clear();
    broker_.reset();
    if (!HasFailure()) harness::RemoveTree(dir_);
  }
  // A QoS 0 transport for `cn` with the library under test (not connected).
  std::unique_ptr<Transport> Make(const std::string& cn, Received* in) {
    auto opts = broker_->ClientOptions(cn);
    EXPECT_TRUE(opts.ok()) << opts.status().ToString();
    if (!opts.ok()) return nullptr;
    opts->client = GetParam();
    opts->qos = 0;
    auto t = NewMqttTransport(*opts);
    EXPECT_TRUE(t.ok()) << t.status().ToString();
    if (!t.ok()) return nullptr;
    (*t)->SetHandler(in->Handler());
    return std::move(t).value();
  }
  Transport* Connected(const std::string& cn, Received* in) {
    auto t = Make(cn, in);
    if (t == nullptr) return nullptr;
    Status s = t->Connect();
    EXPECT_TRUE(s.ok()) << s.ToString();
    if (!s.ok()) return nullptr;
    transports_.push_back(std::move(t));
    return transports_.back().get();
  }

  std::string dir_;
  std::unique_ptr<Mosquitto> broker_;
  std::vector<std::unique_ptr<Transport>> transports_;
};

TEST_P(MqttQos0ITest, FramesFlowBothWays) {
  Received ks_in, node_in;
  Transport* ks = Connected("ks", &ks_in);
  Transport* node = Connected("n0a1b2c3d", &node_in);
  ASSERT_NE(ks, nullptr);
  ASSERT_NE(node, nullptr);
  ASSERT_TRUE(ks->Subscribe("kgr/ks/in").ok());
  ASSERT_TRUE(node->Subscribe("kgr/n0a1b2c3d/in").ok());
  ASSERT_TRUE(node->Publish("kgr/ks/in", B("to-ks")).ok());
  EXPECT_TRUE(ks_in.WaitFor("to-ks"));
  ASSERT_TRUE(ks->Publish("kgr/n0a1b2c3d/in", B("to-node")).ok());
  EXPECT_TRUE(node_in.WaitFor("to-node"));
}

TEST_P(MqttQos0ITest, PersistentSessionQueuesWhileAway) {
  Received ks_in, node_in, node_in2;
  Transport* ks = Connected("ks", &ks_in);
  ASSERT_NE(ks, nullptr);
  {
    auto node = Make("n0a1b2c3d", &node_in);
    ASSERT_NE(node, nullptr);
    ASSERT_TRUE(node->Connect().ok());
    ASSERT_TRUE(node->Subscribe("kgr/n0a1b2c3d/inbox").ok());
    ASSERT_TRUE(node->Disconnect().ok());
  }
  ASSERT_TRUE(ks->Publish("kgr/n0a1b2c3d/inbox", B("while-away")).ok());
  // The broker has handled the first publish once it routed the second.
  ASSERT_TRUE(ks->Subscribe("kgr/ks/sync").ok());
  ASSERT_TRUE(ks->Publish("kgr/ks/sync", B("sync")).ok());
  ASSERT_TRUE(ks_in.WaitFor("sync"));
  // Same client id, no Subscribe: the broker kept session and message.
  Transport* node = Connected("n0a1b2c3d", &node_in2);
  ASSERT_NE(node, nullptr);
  EXPECT_TRUE(node_in2.WaitFor("while-away"));
}

// A frame published while the broker is away is not an error at QoS 0
// either (the node's first nnsk_key_req of a renewal used to fail with
// "reconnecting (QoS 0 dropped)" instead of being retransmitted): it is
// held and sent after the reconnect, as at QoS 1.
TEST_P(MqttQos0ITest, PublishWhileTheBrokerIsAwayIsNotAnError) {
  Received ks_in, node_in;
  Transport* ks = Connected("ks", &ks_in);
  Transport* node = Connected("n0a1b2c3d", &node_in);
  ASSERT_NE(ks, nullptr);
  ASSERT_NE(node, nullptr);
  ASSERT_TRUE(ks->Subscribe("kgr/ks/in").ok());
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
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::seconds(30);
  bool back = false;
  for (int i = 0; !back && std::chrono::steady_clock::now() < deadline; ++i) {
    const std::string probe = "back" + std::to_string(i);
    EXPECT_TRUE(node->Publish("kgr/ks/in", B(probe)).ok());
    back = ks_in.WaitFor(probe, std::chrono::milliseconds(500));
  }
  EXPECT_TRUE(back);
}

INSTANTIATE_TEST_SUITE_P(Clients, MqttQos0ITest,
                         ::testing::Values(MqttClient::kPaho,
                                           MqttClient::kMosquitto),
                         [](const auto& info) {
                           return std::string(MqttClientName(info.param));
                         });

}  // namespace
}  // namespace kgr
