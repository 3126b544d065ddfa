// Transport over MQTT 3.1.1 with libmosquitto (MqttClient::kMosquitto).
//
// Threads: callers of the public methods, and one network thread per
// transport (Run) that does every socket and TLS operation through
// mosquitto_loop() and runs the library's callbacks (OnConnect, OnMessage,
// OnSubscribe, ...). The client is in "threaded" mode
// (mosquitto_threaded_set), so Publish/Subscribe from other threads only
// queue a packet and wake the network thread through the library's socket
// pair; the network thread writes it. Reconnection is ours, not
// mosquitto_loop_forever's: that one gives up for good after a TLS error.
//
// `mu_` guards the state, the topic set, the SUBACK/UNSUBACK waiters and the
// connect result. The library's callbacks take `mu_`; we never hold `mu_`
// while waiting for the network thread, except on `cv_` (which releases it).
//
// Internal to libkgr/mqtt: mosquitto_transport.cc sets the client up,
// connects, reconnects and disconnects; mosquitto_messages.cc subscribes,
// publishes and runs the library's message callbacks.
#ifndef KGR_MQTT_MOSQUITTO_TRANSPORT_H_
#define KGR_MQTT_MOSQUITTO_TRANSPORT_H_

#include <mosquitto.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <set>
#include <span>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "kgr/mqtt.h"
#include "kgr/transport.h"

namespace kgr::mqtt_internal {

using Clock = std::chrono::steady_clock;

class MosquittoTransport final : public Transport {
 public:
  explicit MosquittoTransport(MqttOptions options)
      : options_(std::move(options)) {}

  ~MosquittoTransport() override;

  // Creates and configures the client; called once by the factory.
  Status Init();

  void SetHandler(Handler handler) override { handler_ = std::move(handler); }
  Status Connect() override;
  Status Subscribe(const std::string& topic) override;
  Status Unsubscribe(const std::string& topic) override;
  Status Publish(const std::string& topic,
                 std::span<const uint8_t> payload) override;
  Status Disconnect() override;
  Status Reconnect() override;

 private:
  enum class State { kIdle, kConnecting, kUp, kReconnecting };
  struct Ack {
    bool done = false;
    bool refused = false;
  };

  // The network thread: runs mosquitto_loop() until Disconnect() or a
  // failed first connect; reconnects with back-off after a lost connection.
  void Run();
  // Called on the network thread when the connection is down (rc: why).
  // Returns false if the thread must end.
  bool HandleDown(int rc);
  Status SubscribeOrUnsubscribe(const std::string& topic, bool subscribe);
  std::chrono::milliseconds Timeout() const {
    return std::chrono::milliseconds(options_.connect_timeout_ms);
  }
  // The library logs only while a connection is being set up (it formats
  // every log line, one per packet, when a log callback is set).
  void LogWhileConnecting(bool on) {
    mosquitto_log_callback_set(mosq_,
                               on ? &MosquittoTransport::OnLog : nullptr);
  }
  std::string LastError();

  static void OnConnect(mosquitto*, void* self, int rc, int flags);
  static void OnMessage(mosquitto*, void* self, const mosquitto_message* msg);
  static void OnSubscribe(mosquitto*, void* self, int mid, int count,
                          const int* granted);
  static void OnUnsubscribe(mosquitto*, void* self, int mid);
  static void OnLog(mosquitto*, void* self, int level, const char* text);

  const MqttOptions options_;
  Handler handler_;  // set before Connect(), read on the network thread
  mosquitto* mosq_ = nullptr;

  std::mutex connect_mu_;  // held for the whole of Connect()
  std::mutex mu_;
  std::condition_variable cv_;
  State state_ = State::kIdle;
  std::atomic<bool> stop_{false};
  Status connect_result_;  // of the attempt in kConnecting
  int connack_ = 0;        // CONNACK code of the latest attempt
  bool resubscribe_ = false;
  int buffered_ = 0;  // publishes queued while reconnecting
  // QoS 0 publishes made while reconnecting (libmosquitto queues only QoS
  // >= 1 itself), sent after the resubscription; dropped on Disconnect().
  std::vector<std::pair<std::string, Bytes>> held_;
  std::chrono::seconds reconnect_delay_{1};
  // Network thread only (set by Connect() before it starts): whether the
  // session is up, and when the current connection attempt gives up.
  bool up_ = false;
  Clock::time_point attempt_deadline_;
  std::set<std::string> topics_;
  std::map<int, Ack> acks_;  // SUBACK/UNSUBACK waiters by message id
  std::thread thread_;

  std::mutex log_mu_;
  std::string last_log_;  // latest error the library logged
};

}  // namespace kgr::mqtt_internal

#endif  // KGR_MQTT_MOSQUITTO_TRANSPORT_H_
