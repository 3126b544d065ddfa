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
#include <mosquitto.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sys/select.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "kgr/mqtt.h"
#include "mqtt/mosquitto_status.h"
#include "mqtt/mqtt_common.h"
#include "spdlog/spdlog.h"

namespace kgr::mqtt_internal {
namespace {

using Clock = std::chrono::steady_clock;

// select() timeout of one mosquitto_loop() pass when nothing happens; the
// keepalive PINGREQ is checked once per pass.
constexpr int kLoopTimeoutMs = 1000;
constexpr int kSubackRefused = 0x80;  // MQTT 3.1.1 SUBACK "Failure"
constexpr auto kDisconnectFlush = std::chrono::milliseconds(1000);

// Whether the TCP connection under `fd` is closed (a refused or reset
// connect). libmosquitto 2.0.11 takes a failed connect under a TLS
// handshake for "try again" (SSL_ERROR_SYSCALL) and would poll the dead
// socket until the keepalive expires; the transport checks for it itself.
bool TcpClosed(int fd) {
  if (fd < 0) return false;
  tcp_info info{};
  socklen_t len = sizeof info;
  if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) != 0) return false;
  return info.tcpi_state == TCP_CLOSE;
}

void LibInitOnce() {
  static std::once_flag once;
  // Process-wide and never undone (mosquitto_lib_cleanup would pull OpenSSL
  // state from under other users of the library).
  std::call_once(once, [] { mosquitto_lib_init(); });
}

class MosquittoTransport final : public Transport {
 public:
  explicit MosquittoTransport(MqttOptions options)
      : options_(std::move(options)) {}

  ~MosquittoTransport() override {
    Status s = Disconnect();
    if (!s.ok()) {
      spdlog::debug("mqtt: disconnect on destruction: {}", s.ToString());
    }
    if (mosq_ != nullptr) mosquitto_destroy(mosq_);
  }

  // Creates and configures the client; called once by the factory.
  Status Init();

  void SetHandler(Handler handler) override { handler_ = std::move(handler); }
  Status Connect() override;
  Status Subscribe(const std::string& topic) override;
  Status Unsubscribe(const std::string& topic) override;
  Status Publish(const std::string& topic,
                 std::span<const uint8_t> payload) override;
  Status Disconnect() override;

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

Status MosquittoTransport::Init() {
  LibInitOnce();
  const MqttOptions& o = options_;
  const std::string client_id =
      o.client_id.empty() ? RandomClientId() : o.client_id;
  // Persistent session (clean_session=false): the broker queues QoS 1
  // messages for us while we are briefly away.
  mosq_ = mosquitto_new(client_id.c_str(), /*clean_session=*/false, this);
  if (mosq_ == nullptr) {
    return InternalError(std::string("mqtt: creating client: ") +
                         std::strerror(errno));
  }
  auto check = [](int rc, const char* what) -> Status {
    if (rc == MOSQ_ERR_SUCCESS) return OkStatus();
    return MosquittoStatus(MqttOp::kConnect, rc, what);
  };
  KGR_RETURN_IF_ERROR(
      check(mosquitto_int_option(mosq_, MOSQ_OPT_PROTOCOL_VERSION,
                                 MQTT_PROTOCOL_V311),
            "protocol version"));
  // Nagle's algorithm would hold small frames for the peer's delayed ACK
  // (40 ms on Linux); the library sets TCP_NODELAY on every socket.
  KGR_RETURN_IF_ERROR(check(
      mosquitto_int_option(mosq_, MOSQ_OPT_TCP_NODELAY, 1), "tcp nodelay"));
  KGR_RETURN_IF_ERROR(check(mosquitto_threaded_set(mosq_, true), "threaded"));
  // QoS 1 messages awaiting PUBACK (the library's limit is 65535); more
  // wait in its queue.
  KGR_RETURN_IF_ERROR(check(mosquitto_max_inflight_messages_set(
                                mosq_, static_cast<unsigned>(std::min(
                                           o.max_buffered_messages, 65535))),
                            "max inflight"));
  if (o.tls) {
    const char* cert = o.cert_file.empty() ? nullptr : o.cert_file.c_str();
    const char* key = o.key_file.empty() ? nullptr : o.key_file.c_str();
    // Only the KED CA is trusted (no default trust store).
    KGR_RETURN_IF_ERROR(check(mosquitto_tls_set(mosq_, o.ca_file.c_str(),
                                                nullptr, cert, key, nullptr),
                              "tls files"));
    // SSL_VERIFY_PEER; the default TLS versions (1.2 and 1.3).
    KGR_RETURN_IF_ERROR(check(
        mosquitto_tls_opts_set(mosq_, 1, nullptr, nullptr), "tls options"));
    // The server certificate must match the host name or IP address.
    KGR_RETURN_IF_ERROR(
        check(mosquitto_tls_insecure_set(mosq_, false), "tls verify"));
  }
  mosquitto_connect_with_flags_callback_set(mosq_,
                                            &MosquittoTransport::OnConnect);
  mosquitto_message_callback_set(mosq_, &MosquittoTransport::OnMessage);
  mosquitto_subscribe_callback_set(mosq_, &MosquittoTransport::OnSubscribe);
  mosquitto_unsubscribe_callback_set(mosq_, &MosquittoTransport::OnUnsubscribe);
  return OkStatus();
}

std::string MosquittoTransport::LastError() {
  std::lock_guard<std::mutex> lock(log_mu_);
  return last_log_;
}

Status MosquittoTransport::Connect() {
  std::lock_guard<std::mutex> connect_lock(connect_mu_);
  const auto deadline = Clock::now() + Timeout();
  {
    std::unique_lock<std::mutex> lock(mu_);
    if (state_ == State::kUp) return OkStatus();
    if (state_ == State::kReconnecting) {
      if (!cv_.wait_until(lock, deadline,
                          [this] { return state_ == State::kUp; })) {
        return UnavailableError("mqtt connect: still reconnecting after " +
                                std::to_string(options_.connect_timeout_ms) +
                                " ms: " + LastError());
      }
      return OkStatus();
    }
  }
  // kIdle: a thread of an earlier failed attempt has ended or is ending.
  if (thread_.joinable()) thread_.join();
  {
    std::lock_guard<std::mutex> lock(mu_);
    state_ = State::kConnecting;
    connect_result_ = OkStatus();
    connack_ = 0;
    resubscribe_ = !topics_.empty();
    reconnect_delay_ = std::chrono::seconds(options_.reconnect_min_s);
    stop_ = false;
  }
  {
    std::lock_guard<std::mutex> lock(log_mu_);
    last_log_.clear();
  }
  LogWhileConnecting(true);
  up_ = false;
  attempt_deadline_ = deadline;
  errno = 0;
  int rc = mosquitto_connect_async(mosq_, options_.host.c_str(), options_.port,
                                   options_.keepalive_s);
  if (rc != MOSQ_ERR_SUCCESS) {
    std::string detail = LastError();
    if (detail.empty() && rc == MOSQ_ERR_ERRNO) detail = std::strerror(errno);
    std::lock_guard<std::mutex> lock(mu_);
    state_ = State::kIdle;
    return MosquittoStatus(MqttOp::kConnect, rc, detail);
  }
  thread_ = std::thread([this] { Run(); });
  pthread_setname_np(thread_.native_handle(), "kgr-mqtt");

  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait_until(lock, deadline,
                 [this] { return state_ != State::kConnecting; });
  if (state_ == State::kUp || state_ == State::kReconnecting) {
    return OkStatus();
  }
  Status result = connect_result_;
  if (state_ == State::kConnecting) {  // timed out: abandon the attempt
    state_ = State::kIdle;
    const std::string why = LastError();
    result = UnavailableError("mqtt connect: no CONNACK within " +
                              std::to_string(options_.connect_timeout_ms) +
                              " ms" + (why.empty() ? "" : ": " + why));
  }
  stop_ = true;
  lock.unlock();
  cv_.notify_all();
  mosquitto_disconnect(mosq_);  // wakes the network thread's select()
  thread_.join();
  return result;
}

void MosquittoTransport::Run() {
  while (!stop_) {
    int rc = mosquitto_loop(mosq_, kLoopTimeoutMs, 1);
    if (rc == MOSQ_ERR_SUCCESS && !up_) {
      // Connecting: fail the attempt on a dead socket or after the timeout.
      if (TcpClosed(mosquitto_socket(mosq_))) {
        rc = MOSQ_ERR_CONN_REFUSED;
      } else if (Clock::now() >= attempt_deadline_) {
        rc = MOSQ_ERR_TIMEOUT;
      }
    }
    if (rc == MOSQ_ERR_SUCCESS) continue;
    if (!HandleDown(rc)) return;
  }
}

bool MosquittoTransport::HandleDown(int rc) {
  const int os_errno = errno;
  up_ = false;
  std::unique_lock<std::mutex> lock(mu_);
  if (stop_ || state_ == State::kIdle) return false;
  std::string detail = LastError();
  if (detail.empty() && rc == MOSQ_ERR_ERRNO) detail = std::strerror(os_errno);
  const int sock = mosquitto_socket(mosq_);
  if (rc == MOSQ_ERR_INVAL && sock >= FD_SETSIZE) {
    // mosquitto_loop() select()s, which cannot watch such a descriptor.
    detail = "socket descriptor " + std::to_string(sock) +
             " is not below FD_SETSIZE (" + std::to_string(FD_SETSIZE) +
             "), which libmosquitto needs: this process has too many open "
             "files (the paho client has no such limit)";
  }
  if (state_ == State::kConnecting) {
    // The first connect failed: Connect() reports it; no retry.
    connect_result_ = connack_ > 0
                          ? ConnackStatus(connack_, detail)
                          : MosquittoStatus(MqttOp::kConnect, rc, detail);
    state_ = State::kIdle;
    lock.unlock();
    cv_.notify_all();
    return false;
  }
  if (state_ == State::kUp) {
    state_ = State::kReconnecting;
    resubscribe_ = true;
    buffered_ = 0;
    spdlog::warn("mqtt: connection lost ({}); reconnecting",
                 MosquittoStatus(MqttOp::kConnect, rc, detail).message());
    lock.unlock();
    cv_.notify_all();  // Subscribe() waiters: the topic is held
    LogWhileConnecting(true);
    lock.lock();
  }
  // Back off (doubling up to reconnect_max_s until a connect succeeds),
  // then reconnect; repeat until the reconnect starts or we are stopped.
  const auto max_delay = std::chrono::seconds(options_.reconnect_max_s);
  while (true) {
    const auto delay = reconnect_delay_;
    reconnect_delay_ = std::min(reconnect_delay_ * 2, max_delay);
    if (cv_.wait_for(lock, delay, [this] { return stop_.load(); })) {
      return false;
    }
    lock.unlock();
    {
      std::lock_guard<std::mutex> log_lock(log_mu_);
      last_log_.clear();
    }
    attempt_deadline_ = Clock::now() + Timeout();
    int rrc = mosquitto_reconnect_async(mosq_);
    lock.lock();
    if (rrc == MOSQ_ERR_SUCCESS) return !stop_;
    spdlog::debug(
        "mqtt: reconnect: {}",
        MosquittoStatus(MqttOp::kConnect, rrc, LastError()).message());
  }
}

void MosquittoTransport::OnConnect(mosquitto*, void* self, int rc,
                                   int /*flags*/) {
  auto* t = static_cast<MosquittoTransport*>(self);
  std::vector<std::string> topics;
  std::vector<std::pair<std::string, Bytes>> held;
  {
    std::lock_guard<std::mutex> lock(t->mu_);
    t->connack_ = rc;
    if (rc != 0) {
      spdlog::warn("mqtt: broker refused the connection: {}",
                   mosquitto_connack_string(rc));
      return;  // mosquitto_loop() now fails; HandleDown() decides
    }
    const bool was_reconnecting = t->state_ == State::kReconnecting;
    t->up_ = true;
    t->state_ = State::kUp;
    t->buffered_ = 0;
    held.swap(t->held_);
    t->reconnect_delay_ = std::chrono::seconds(t->options_.reconnect_min_s);
    // Always resubscribe after a lost connection: the broker may have
    // restarted without the session, or lost a SUBSCRIBE in flight.
    if (t->resubscribe_) topics.assign(t->topics_.begin(), t->topics_.end());
    t->resubscribe_ = false;
    if (was_reconnecting) {
      spdlog::info("mqtt: reconnected, resubscribing {} topic(s)",
                   topics.size());
    }
  }
  t->cv_.notify_all();
  t->LogWhileConnecting(false);
  if (!topics.empty()) {
    std::vector<char*> filters;
    for (std::string& topic : topics) filters.push_back(topic.data());
    int src = mosquitto_subscribe_multiple(
        t->mosq_, nullptr, static_cast<int>(filters.size()), filters.data(),
        t->options_.qos, 0, nullptr);
    if (src != MOSQ_ERR_SUCCESS) {
      spdlog::warn("mqtt: resubscribe: {}",
                   MosquittoStatus(MqttOp::kSubscribe, src, "").message());
    }
  }
  // After the SUBSCRIBE on the same connection: answers find our topics.
  for (const auto& [topic, payload] : held) {
    int prc = mosquitto_publish(t->mosq_, nullptr, topic.c_str(),
                                static_cast<int>(payload.size()),
                                payload.data(), 0, /*retain=*/false);
    if (prc != MOSQ_ERR_SUCCESS) {
      spdlog::debug("mqtt: held publish: {}",
                    MosquittoStatus(MqttOp::kPublish, prc, "").message());
    }
  }
}

void MosquittoTransport::OnMessage(mosquitto*, void* self,
                                   const mosquitto_message* msg) {
  auto* t = static_cast<MosquittoTransport*>(self);
  if (!t->handler_ || msg == nullptr || msg->topic == nullptr) return;
  const auto* p = static_cast<const uint8_t*>(msg->payload);
  Bytes payload(p, p + (p == nullptr ? 0 : msg->payloadlen));
  try {
    t->handler_(msg->topic, std::move(payload));
  } catch (const std::exception& e) {
    // Never let an exception unwind into the library's C frames.
    spdlog::error("mqtt: message handler threw: {}", e.what());
  } catch (...) {
    spdlog::error("mqtt: message handler threw");
  }
}

void MosquittoTransport::OnSubscribe(mosquitto*, void* self, int mid, int count,
                                     const int* granted) {
  auto* t = static_cast<MosquittoTransport*>(self);
  bool refused = false;
  for (int i = 0; i < count; ++i) refused |= granted[i] >= kSubackRefused;
  {
    std::lock_guard<std::mutex> lock(t->mu_);
    auto it = t->acks_.find(mid);
    if (it == t->acks_.end()) {
      // A resubscription after reconnect: nobody waits for it.
      if (refused) spdlog::warn("mqtt: broker refused a resubscription");
      return;
    }
    it->second.done = true;
    it->second.refused = refused;
  }
  t->cv_.notify_all();
}

void MosquittoTransport::OnUnsubscribe(mosquitto*, void* self, int mid) {
  auto* t = static_cast<MosquittoTransport*>(self);
  {
    std::lock_guard<std::mutex> lock(t->mu_);
    auto it = t->acks_.find(mid);
    if (it == t->acks_.end()) return;
    it->second.done = true;
  }
  t->cv_.notify_all();
}

void MosquittoTransport::OnLog(mosquitto*, void* self, int level,
                               const char* text) {
  if ((level & (MOSQ_LOG_ERR | MOSQ_LOG_WARNING)) == 0 || text == nullptr) {
    return;
  }
  auto* t = static_cast<MosquittoTransport*>(self);
  std::lock_guard<std::mutex> lock(t->log_mu_);
  // Keep the first error of an attempt (later lines are consequences).
  if (t->last_log_.empty()) t->last_log_ = text;
}

Status MosquittoTransport::Subscribe(const std::string& topic) {
  KGR_RETURN_IF_ERROR(ValidateTopicFilter(topic));
  return SubscribeOrUnsubscribe(topic, /*subscribe=*/true);
}

Status MosquittoTransport::Unsubscribe(const std::string& topic) {
  KGR_RETURN_IF_ERROR(ValidateTopicFilter(topic));
  return SubscribeOrUnsubscribe(topic, /*subscribe=*/false);
}

Status MosquittoTransport::SubscribeOrUnsubscribe(const std::string& topic,
                                                  bool subscribe) {
  const MqttOp op = subscribe ? MqttOp::kSubscribe : MqttOp::kUnsubscribe;
  const char* what = subscribe ? "subscribe" : "unsubscribe";
  const auto deadline = Clock::now() + Timeout();
  std::unique_lock<std::mutex> lock(mu_);
  if (state_ == State::kIdle || state_ == State::kConnecting) {
    return FailedPreconditionError(std::string("mqtt ") + what +
                                   ": not connected");
  }
  bool added = false;
  if (subscribe) {
    added = topics_.insert(topic).second;
  } else {
    topics_.erase(topic);
  }
  // While reconnecting, the topic set is what gets resubscribed.
  if (state_ == State::kReconnecting) return OkStatus();
  auto forget = [&] {
    if (added) topics_.erase(topic);
  };
  int mid = 0;
  // Under mu_: OnSubscribe (which takes mu_) cannot see the SUBACK before
  // the waiter below is registered.
  int rc = subscribe
               ? mosquitto_subscribe(mosq_, &mid, topic.c_str(), options_.qos)
               : mosquitto_unsubscribe(mosq_, &mid, topic.c_str());
  if (rc == MOSQ_ERR_NO_CONN) return OkStatus();  // dropped: held
  if (rc != MOSQ_ERR_SUCCESS) {
    forget();
    return MosquittoStatus(op, rc, "topic '" + topic + "'");
  }
  acks_[mid] = Ack{};
  cv_.wait_until(lock, deadline,
                 [&] { return acks_[mid].done || state_ != State::kUp; });
  const Ack ack = acks_[mid];
  acks_.erase(mid);
  if (ack.done) {
    if (ack.refused) {
      forget();
      return PermissionDeniedError("mqtt subscribe: '" + topic +
                                   "' refused by the broker");
    }
    return OkStatus();
  }
  if (state_ == State::kReconnecting) return OkStatus();  // held
  if (state_ == State::kIdle) {
    return FailedPreconditionError(std::string("mqtt ") + what +
                                   ": disconnected");
  }
  forget();
  return UnavailableError(std::string("mqtt ") + what + ": no " +
                          (subscribe ? "SUBACK" : "UNSUBACK") + " for '" +
                          topic + "'");
}

Status MosquittoTransport::Publish(const std::string& topic,
                                   std::span<const uint8_t> payload) {
  KGR_RETURN_IF_ERROR(ValidateTopicName(topic));
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (state_ == State::kIdle || state_ == State::kConnecting) {
      return FailedPreconditionError("mqtt publish: not connected");
    }
    if (state_ == State::kReconnecting) {
      if (buffered_ >= options_.max_buffered_messages) {
        return ResourceExhaustedError(
            "mqtt publish: " + std::to_string(buffered_) +
            " messages already queued while reconnecting");
      }
      ++buffered_;
      if (options_.qos == 0) {
        held_.emplace_back(topic, Bytes(payload.begin(), payload.end()));
        return OkStatus();
      }
    }
  }
  // Never retained: a frame is for whoever is subscribed now.
  int rc = mosquitto_publish(mosq_, nullptr, topic.c_str(),
                             static_cast<int>(payload.size()), payload.data(),
                             options_.qos, /*retain=*/false);
  // QoS >= 1: a message published while the socket is down stays queued
  // in the library and is sent after the reconnect. QoS 0: one that races
  // the detection of a lost connection is lost, like any QoS 0 message on
  // a dying connection; kgr's end-to-end retransmission covers it.
  if (rc == MOSQ_ERR_NO_CONN) return OkStatus();
  return MosquittoStatus(MqttOp::kPublish, rc, "");
}

Status MosquittoTransport::Disconnect() {
  bool was_up = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (state_ == State::kIdle && !thread_.joinable()) return OkStatus();
    was_up = state_ == State::kUp;
    state_ = State::kIdle;
    stop_ = true;
    held_.clear();
  }
  cv_.notify_all();
  // Queues DISCONNECT and wakes the network thread's select().
  mosquitto_disconnect(mosq_);
  if (thread_.joinable()) thread_.join();
  // The network thread may have stopped before writing the DISCONNECT; the
  // client is ours alone now.
  const auto deadline = Clock::now() + kDisconnectFlush;
  while (was_up && mosquitto_socket(mosq_) != -1 && Clock::now() < deadline) {
    if (mosquitto_loop(mosq_, 100, 1) != MOSQ_ERR_SUCCESS) break;
  }
  LogWhileConnecting(false);
  return OkStatus();
}

}  // namespace

StatusOr<std::unique_ptr<Transport>> NewMosquittoTransport(
    const MqttOptions& options) {
  auto transport = std::make_unique<MosquittoTransport>(options);
  KGR_RETURN_IF_ERROR(transport->Init());
  return std::unique_ptr<Transport>(std::move(transport));
}

}  // namespace kgr::mqtt_internal
