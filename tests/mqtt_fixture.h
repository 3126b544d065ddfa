// The MqttITest fixture (a TLS Mosquitto per test, transports with the
// client library of the test's parameter) and Inbox, shared by
// mqtt_itest.cc and mqtt_qos0_itest.cc.
#ifndef KGR_TESTS_MQTT_FIXTURE_H_
#define KGR_TESTS_MQTT_FIXTURE_H_

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "harness/mosquitto.h"
#include "harness/net.h"
#include "kgr/mqtt.h"
#include "kgr/transport.h"

namespace kgr::mqtt_test {

using harness::Mosquitto;
using Clock = std::chrono::steady_clock;

inline Bytes B(const std::string& s) { return Bytes(s.begin(), s.end()); }
inline std::string S(const Bytes& b) { return std::string(b.begin(), b.end()); }

inline constexpr auto kWait = std::chrono::seconds(10);

// Collects what a transport's handler receives.
class Inbox {
 public:
  Transport::Handler Handler() {
    return [this](const std::string& topic, Bytes payload) {
      std::lock_guard<std::mutex> lock(mu_);
      messages_.emplace_back(topic, S(payload));
      cv_.notify_all();
    };
  }
  // Waits until a message with payload `text` arrived.
  bool WaitFor(const std::string& text, Clock::duration timeout = kWait) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return HasLocked(text); });
  }
  bool Has(const std::string& text) {
    std::lock_guard<std::mutex> lock(mu_);
    return HasLocked(text);
  }
  std::vector<std::pair<std::string, std::string>> messages() {
    std::lock_guard<std::mutex> lock(mu_);
    return messages_;
  }

 private:
  bool HasLocked(const std::string& text) const {
    for (const auto& [t, p] : messages_) {
      if (p == text) return true;
    }
    return false;
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::pair<std::string, std::string>> messages_;
};

// A TLS Mosquitto per test, and transports of the client library (and QoS)
// a subclass names.
class MqttBrokerTest : public ::testing::Test {
 protected:
  virtual MqttClient client() const = 0;
  virtual int qos() const { return 1; }

  void SetUp() override {
    dir_ = harness::MakeTempDir("mqtt");
    ASSERT_FALSE(dir_.empty());
    broker_ = std::make_unique<Mosquitto>(dir_);
    Status s = broker_->Start();
    ASSERT_TRUE(s.ok()) << s.ToString();
  }
  void TearDown() override {
    transports_.clear();
    if (broker_) {
      if (HasFailure()) {
        std::fprintf(stderr, "broker log (%s)\n", broker_->log_file().c_str());
      }
      broker_.reset();
    }
    if (!HasFailure()) harness::RemoveTree(dir_);
  }

  // An Inbox that outlives every transport of the test (they are destroyed
  // first): a message a transport's thread delivers late, after the test
  // body ended, never reaches a dead Inbox. (Inboxes on the test body's
  // stack did, when TearDown stopped the transports afterwards: a SIGSEGV
  // in Inbox's handler, seen under qemu-user, where such late deliveries
  // are common.)
  Inbox& NewInbox() {
    return *inboxes_.emplace_back(std::make_unique<Inbox>());
  }

  // The broker's options for `cn`, with the client library and QoS under
  // test.
  StatusOr<MqttOptions> Options(const std::string& cn) {
    auto opts = broker_->ClientOptions(cn);
    if (opts.ok()) {
      opts->client = client();
      opts->qos = qos();
    }
    return opts;
  }

  // A connected transport for `cn` whose messages go to `inbox`.
  Transport* Connect(const std::string& cn, Inbox* inbox) {
    auto opts = Options(cn);
    EXPECT_TRUE(opts.ok()) << opts.status().ToString();
    if (!opts.ok()) return nullptr;
    return ConnectWith(*opts, inbox);
  }
  Transport* ConnectWith(const MqttOptions& opts, Inbox* inbox) {
    auto t = NewMqttTransport(opts);
    EXPECT_TRUE(t.ok()) << t.status().ToString();
    if (!t.ok()) return nullptr;
    (*t)->SetHandler(inbox->Handler());
    Status s = (*t)->Connect();
    EXPECT_TRUE(s.ok()) << s.ToString();
    if (!s.ok()) return nullptr;
    transports_.push_back(std::move(t).value());
    return transports_.back().get();
  }

  std::string dir_;
  std::unique_ptr<Mosquitto> broker_;
  std::vector<std::unique_ptr<Inbox>> inboxes_;  // destroyed after:
  std::vector<std::unique_ptr<Transport>> transports_;
};

// Every test runs with each client library under the transport (QoS 1).
class MqttITest : public MqttBrokerTest,
                  public ::testing::WithParamInterface<MqttClient> {
 protected:
  MqttClient client() const override { return GetParam(); }
};

// Both client libraries, for INSTANTIATE_TEST_SUITE_P with ClientName.
inline auto BothClients() {
  return ::testing::Values(MqttClient::kPaho, MqttClient::kMosquitto);
}
inline std::string ClientName(
    const ::testing::TestParamInfo<MqttClient>& info) {
  return std::string(MqttClientName(info.param));
}

}  // namespace kgr::mqtt_test

#endif  // KGR_TESTS_MQTT_FIXTURE_H_
