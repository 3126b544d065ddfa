// Transport over MQTT 3.1.1 with the Paho C++ async client (MqttClient::kPaho).
//
// Threads: callers of the public methods, and Paho's callback thread, which
// runs OnConnected / OnConnectionLost / OnMessage. `mu_` guards the
// connection state, the pending connect token and the topic set. Callbacks
// never wait for a token (the SUBACK would arrive on the very thread that
// waits). Paho's exceptions never leave this file: each call into Paho
// catches them and returns a Status.
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <set>
#include <shared_mutex>
#include <string>
#include <utility>
#include <vector>

#include "kgr/mqtt.h"
#include "mqtt/async_client.h"
#include "mqtt/mqtt_common.h"
#include "mqtt/paho_status.h"
#include "mqtt/tcp_nodelay.h"
#include "spdlog/spdlog.h"

namespace kgr {
namespace {

using mqtt_internal::MqttOp;
using mqtt_internal::PahoStatus;
using mqtt_internal::RandomClientId;
using mqtt_internal::ValidateTopicFilter;
using mqtt_internal::ValidateTopicName;
using Clock = std::chrono::steady_clock;

constexpr int kDisconnectGraceMs = 1000;

Status FromException(MqttOp op, const mqtt::exception& e) {
  int rc = e.get_return_code();
  if (rc == 0) rc = MQTTASYNC_FAILURE;  // a reason code without an rc
  return PahoStatus(op, rc, e.get_message());
}

class PahoTransport final : public Transport {
 public:
  explicit PahoTransport(MqttOptions options) : options_(std::move(options)) {}

  ~PahoTransport() override {
    Status s = Disconnect();
    if (!s.ok())
      spdlog::debug("mqtt: disconnect on destruction: {}", s.ToString());
    client_.reset();  // before the members its callbacks use
  }

  // Builds the Paho client; called once by NewPahoTransport.
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

  // Logs failures of the fire-and-forget resubscription after a reconnect.
  class ResubscribeListener : public mqtt::iaction_listener {
   public:
    void on_failure(const mqtt::token& tok) override {
      spdlog::warn("mqtt: resubscribe after reconnect failed, rc {}",
                   tok.get_return_code());
    }
    void on_success(const mqtt::token&) override {}
  };

  void OnConnected(const std::string& cause);
  void OnConnectionLost(const std::string& cause);
  void OnMessage(mqtt::const_message_ptr msg);
  void ApplyNoDelay();
  std::chrono::milliseconds Timeout() const {
    return std::chrono::milliseconds(options_.connect_timeout_ms);
  }

  const MqttOptions options_;
  Handler handler_;  // set before Connect(), read on Paho's thread
  mqtt::connect_options connect_options_;
  ResubscribeListener resubscribe_listener_;

  std::mutex connect_mu_;  // held for the whole of Connect() and Reconnect()
  // Held exclusively while Reconnect() or Disconnect() takes the connection
  // down and (Reconnect) asks Paho for a new one, shared by Publish(): Paho
  // refuses a publish between an explicit disconnect and the next connect
  // (its send-while-disconnected buffer is for lost connections only).
  std::shared_mutex down_mu_;
  std::mutex mu_;
  std::condition_variable state_cv_;
  State state_ = State::kIdle;
  mqtt::token_ptr pending_connect_;
  std::set<std::string> topics_;
  // Whether the next OnConnected must resubscribe topics_ (set when a
  // connection is lost, or Connect() starts while topics are held).
  bool resubscribe_ = false;
  std::vector<mqtt_internal::PeerAddress> peers_;

  // Last member: destroyed first, so callbacks never see dead members.
  std::unique_ptr<mqtt::async_client> client_;
};

Status PahoTransport::Init() {
  const MqttOptions& o = options_;
  const std::string uri =
      std::string(o.tls ? "ssl://" : "tcp://") +
      (o.host.find(':') != std::string::npos ? "[" + o.host + "]" : o.host) +
      ":" + std::to_string(o.port);
  const std::string client_id =
      o.client_id.empty() ? RandomClientId() : o.client_id;
  try {
    mqtt::create_options create;
    create.set_mqtt_verison(MQTTVERSION_3_1_1);
    // Publish() during an automatic reconnect is buffered in memory (not on
    // disk) and sent once the session is back; only after a first connect.
    create.set_send_while_disconnected(true, /*anyTime=*/false);
    create.set_max_buffered_messages(o.max_buffered_messages);
    create.set_delete_oldest_messages(false);
    client_ =
        std::make_unique<mqtt::async_client>(uri, client_id, create, nullptr);

    connect_options_.set_mqtt_version(MQTTVERSION_3_1_1);
    // Persistent session unless asked: the broker queues QoS 1 messages for
    // us while we are briefly away, and keeps our subscriptions (unless it
    // restarted, hence the resubscription in OnConnected).
    connect_options_.set_clean_session(o.clean_session);
    connect_options_.set_keep_alive_interval(o.keepalive_s);
    connect_options_.set_connect_timeout((o.connect_timeout_ms + 999) / 1000);
    connect_options_.set_automatic_reconnect(o.reconnect_min_s,
                                             o.reconnect_max_s);
    if (o.tls) {
      mqtt::ssl_options ssl;
      // Only the KED CA is trusted (a trust store disables the defaults).
      ssl.set_trust_store(o.ca_file);
      if (!o.cert_file.empty()) {
        ssl.set_key_store(o.cert_file);
        ssl.set_private_key(o.key_file);
      }
      ssl.set_enable_server_cert_auth(true);
      ssl.set_verify(true);  // server certificate must match host/IP
      // No ssl.set_error_handler(): Paho C++ 1.2.0 passes the address of
      // a temporary ssl_options copy as the callback context (ASan:
      // stack-use-after-scope in ssl_options::on_error).
      connect_options_.set_ssl(std::move(ssl));
    }
    client_->set_connected_handler(
        [this](const std::string& cause) { OnConnected(cause); });
    client_->set_connection_lost_handler(
        [this](const std::string& cause) { OnConnectionLost(cause); });
    client_->set_message_callback(
        [this](mqtt::const_message_ptr msg) { OnMessage(std::move(msg)); });
  } catch (const mqtt::exception& e) {
    return FromException(MqttOp::kConnect, e).Annotate("creating client");
  } catch (const std::exception& e) {
    return InternalError(std::string("mqtt: creating client: ") + e.what());
  }
  return OkStatus();
}

Status PahoTransport::Connect() {
  // Serializes Connect() calls, so only this function moves kIdle to
  // kConnecting; Paho is called without holding mu_ (its callbacks take it).
  std::lock_guard<std::mutex> connect_lock(connect_mu_);
  const auto deadline = Clock::now() + Timeout();
  mqtt::token_ptr tok;
  bool start = false;
  {
    std::unique_lock<std::mutex> lock(mu_);
    switch (state_) {
      case State::kUp:
        return OkStatus();
      case State::kReconnecting:
        // Paho is already reconnecting on its own; wait for it.
        if (!state_cv_.wait_until(lock, deadline,
                                  [this] { return state_ == State::kUp; })) {
          return UnavailableError("mqtt connect: still reconnecting after " +
                                  std::to_string(options_.connect_timeout_ms) +
                                  " ms");
        }
        return OkStatus();
      case State::kIdle:
        start = true;
        break;
      case State::kConnecting:  // an earlier Connect() timed out; keep waiting
        tok = pending_connect_;
        break;
    }
  }
  if (start) {
    auto peers = mqtt_internal::ResolvePeers(options_.host, options_.port);
    if (!peers.ok()) return peers.status();
    {
      std::lock_guard<std::mutex> lock(mu_);
      peers_ = std::move(peers).value();
      resubscribe_ = !topics_.empty();
    }
    try {
      tok = client_->connect(connect_options_);
    } catch (const mqtt::exception& e) {
      return FromException(MqttOp::kConnect, e);
    }
    std::lock_guard<std::mutex> lock(mu_);
    pending_connect_ = tok;
    // The connected callback may already have moved us to kUp.
    if (state_ == State::kIdle) state_ = State::kConnecting;
  }

  if (!tok) return UnavailableError("mqtt connect: aborted by Disconnect()");
  bool done = false;
  try {
    done = tok->wait_until(deadline);
  } catch (const mqtt::exception& e) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (pending_connect_ == tok) {
        pending_connect_.reset();
        if (state_ == State::kConnecting) state_ = State::kIdle;
      }
    }
    return FromException(MqttOp::kConnect, e);
  }
  if (!done) {
    return UnavailableError("mqtt connect: no CONNACK within " +
                            std::to_string(options_.connect_timeout_ms) +
                            " ms");
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (pending_connect_ == tok) pending_connect_.reset();
    if (state_ == State::kConnecting) state_ = State::kUp;
  }
  ApplyNoDelay();
  return OkStatus();
}

void PahoTransport::ApplyNoDelay() {
  std::vector<mqtt_internal::PeerAddress> peers;
  {
    std::lock_guard<std::mutex> lock(mu_);
    peers = peers_;
  }
  if (mqtt_internal::SetTcpNoDelayForPeers(peers) == 0) {
    spdlog::warn("mqtt: no socket to the broker found for TCP_NODELAY");
  }
}

void PahoTransport::OnConnected(const std::string& cause) {
  std::vector<std::string> topics;
  {
    std::lock_guard<std::mutex> lock(mu_);
    state_ = State::kUp;
    if (resubscribe_) topics.assign(topics_.begin(), topics_.end());
    resubscribe_ = false;
  }
  state_cv_.notify_all();
  ApplyNoDelay();
  if (topics.empty()) return;
  spdlog::info("mqtt: connected ({}), resubscribing {} topic(s)", cause,
               topics.size());
  try {
    auto filters = mqtt::string_collection::create(topics);
    mqtt::iasync_client::qos_collection qos(topics.size(), options_.qos);
    client_->subscribe(filters, qos, nullptr, resubscribe_listener_);
  } catch (const mqtt::exception& e) {
    spdlog::warn("mqtt: resubscribe: {}",
                 FromException(MqttOp::kSubscribe, e).ToString());
  }
}

void PahoTransport::OnConnectionLost(const std::string& cause) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (state_ == State::kUp) state_ = State::kReconnecting;
    resubscribe_ = true;
  }
  spdlog::warn("mqtt: connection lost ({}); reconnecting", cause);
}

void PahoTransport::OnMessage(mqtt::const_message_ptr msg) {
  if (!handler_ || !msg) return;
  const mqtt::binary& p = msg->get_payload();
  Bytes payload(p.begin(), p.end());
  try {
    handler_(msg->get_topic(), std::move(payload));
  } catch (const std::exception& e) {
    // Never let an exception unwind into Paho's thread.
    spdlog::error("mqtt: message handler threw: {}", e.what());
  } catch (...) {
    spdlog::error("mqtt: message handler threw");
  }
}

Status PahoTransport::Subscribe(const std::string& topic) {
  KGR_RETURN_IF_ERROR(ValidateTopicFilter(topic));
  bool added = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (state_ == State::kIdle || state_ == State::kConnecting) {
      return FailedPreconditionError("mqtt subscribe: not connected");
    }
    added = topics_.insert(topic).second;
    // While reconnecting, the topic is held and subscribed with the others
    // as soon as the connection is back.
    if (state_ == State::kReconnecting) return OkStatus();
  }
  auto forget = [&] {
    if (!added) return;
    std::lock_guard<std::mutex> lock(mu_);
    topics_.erase(topic);
  };
  try {
    mqtt::token_ptr tok = client_->subscribe(topic, options_.qos);
    if (!tok->wait_for(Timeout())) {
      forget();
      return UnavailableError("mqtt subscribe: no SUBACK for '" + topic + "'");
    }
  } catch (const mqtt::exception& e) {
    {
      // The connection dropped under us: held for the resubscription.
      std::lock_guard<std::mutex> lock(mu_);
      if (state_ == State::kReconnecting) return OkStatus();
    }
    forget();
    return FromException(MqttOp::kSubscribe, e)
        .Annotate("topic '" + topic + "'");
  }
  return OkStatus();
}

Status PahoTransport::Unsubscribe(const std::string& topic) {
  KGR_RETURN_IF_ERROR(ValidateTopicFilter(topic));
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (state_ == State::kIdle || state_ == State::kConnecting) {
      return FailedPreconditionError("mqtt unsubscribe: not connected");
    }
    topics_.erase(topic);
  }
  try {
    mqtt::token_ptr tok = client_->unsubscribe(topic);
    if (!tok->wait_for(Timeout())) {
      return UnavailableError("mqtt unsubscribe: no UNSUBACK for '" + topic +
                              "'");
    }
  } catch (const mqtt::exception& e) {
    return FromException(MqttOp::kUnsubscribe, e)
        .Annotate("topic '" + topic + "'");
  }
  return OkStatus();
}

Status PahoTransport::Publish(const std::string& topic,
                              std::span<const uint8_t> payload) {
  KGR_RETURN_IF_ERROR(ValidateTopicName(topic));
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (state_ == State::kIdle || state_ == State::kConnecting) {
      return FailedPreconditionError("mqtt publish: not connected");
    }
  }
  static const uint8_t kEmpty = 0;
  const void* data = payload.empty() ? &kEmpty : payload.data();
  std::shared_lock<std::shared_mutex> not_down(down_mu_);
  try {
    // Never retained: a frame is for whoever is subscribed now.
    client_->publish(topic, data, payload.size(), options_.qos,
                     /*retained=*/false);
  } catch (const mqtt::exception& e) {
    return FromException(MqttOp::kPublish, e);
  }
  return OkStatus();
}

Status PahoTransport::Disconnect() {
  std::unique_lock<std::shared_mutex> down(down_mu_);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (state_ == State::kIdle || !client_) return OkStatus();
    state_ = State::kIdle;
    pending_connect_.reset();
  }
  try {
    // Also stops Paho's automatic reconnect.
    mqtt::token_ptr tok =
        client_->disconnect(std::chrono::milliseconds(kDisconnectGraceMs));
    if (!tok->wait_for(Timeout() +
                       std::chrono::milliseconds(kDisconnectGraceMs))) {
      return UnavailableError("mqtt disconnect: timed out");
    }
  } catch (const mqtt::exception& e) {
    if (e.get_return_code() == MQTTASYNC_DISCONNECTED) return OkStatus();
    return FromException(MqttOp::kDisconnect, e);
  }
  return OkStatus();
}

Status PahoTransport::Reconnect() {
  std::lock_guard<std::mutex> connect_lock(connect_mu_);
  std::unique_lock<std::shared_mutex> down(down_mu_);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (state_ != State::kUp) return OkStatus();
    // As for a lost connection: topics are held and subscribed again once
    // the new session is up (OnConnected), publishes are buffered.
    state_ = State::kReconnecting;
    resubscribe_ = true;
  }
  try {
    // A clean DISCONNECT (in-flight QoS 1 messages get the grace period),
    // then a new connect: Paho makes a new TLS context for it, reading the
    // client certificate and key files again. If that connect fails, Paho's
    // automatic reconnect keeps trying with back-off, as after any loss.
    mqtt::token_ptr tok =
        client_->disconnect(std::chrono::milliseconds(kDisconnectGraceMs));
    if (!tok->wait_for(Timeout() +
                       std::chrono::milliseconds(kDisconnectGraceMs))) {
      spdlog::warn("mqtt: reconnect: no clean disconnect, connecting anyway");
    }
  } catch (const mqtt::exception& e) {
    spdlog::warn("mqtt: reconnect: {}",
                 FromException(MqttOp::kDisconnect, e).ToString());
  }
  try {
    client_->connect(connect_options_);
  } catch (const mqtt::exception& e) {
    std::lock_guard<std::mutex> lock(mu_);
    state_ = State::kIdle;
    return FromException(MqttOp::kConnect, e).Annotate("reconnect");
  }
  spdlog::info(
      "mqtt: reconnecting with the client certificate files read "
      "again");
  return OkStatus();
}

}  // namespace

namespace mqtt_internal {

StatusOr<std::unique_ptr<Transport>> NewPahoTransport(
    const MqttOptions& options) {
  auto transport = std::make_unique<PahoTransport>(options);
  KGR_RETURN_IF_ERROR(transport->Init());
  return std::unique_ptr<Transport>(std::move(transport));
}

}  // namespace mqtt_internal
}  // namespace kgr
