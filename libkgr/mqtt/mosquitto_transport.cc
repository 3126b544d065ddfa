// MosquittoTransport: client setup (TLS), connect, the network thread with
// its reconnection, and disconnect. See mosquitto_transport.h.
#include "mqtt/mosquitto_transport.h"

#include <mosquitto.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sys/select.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>

#include "kgr/mqtt.h"
#include "mqtt/mosquitto_status.h"
#include "mqtt/mqtt_common.h"
#include "spdlog/spdlog.h"

namespace kgr::mqtt_internal {
namespace {

// select() timeout of one mosquitto_loop() pass when nothing happens; the
// keepalive PINGREQ is checked once per pass.
constexpr int kLoopTimeoutMs = 1000;
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

}  // namespace

MosquittoTransport::~MosquittoTransport() {
  Status s = Disconnect();
  if (!s.ok()) {
    spdlog::debug("mqtt: disconnect on destruction: {}", s.ToString());
  }
  if (mosq_ != nullptr) mosquitto_destroy(mosq_);
}

Status MosquittoTransport::Init() {
  LibInitOnce();
  const MqttOptions& o = options_;
  const std::string client_id =
      o.client_id.empty() ? RandomClientId() : o.client_id;
  // Persistent session (clean_session=false) unless asked: the broker
  // queues QoS 1 messages for us while we are briefly away.
  mosq_ = mosquitto_new(client_id.c_str(), o.clean_session, this);
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

Status MosquittoTransport::Reconnect() {
  std::lock_guard<std::mutex> lock(mu_);
  if (state_ != State::kUp) return OkStatus();
  // The network thread sees the socket fail and takes the lost-connection
  // path (HandleDown): back-off from reconnect_min_s, then a new TLS
  // handshake, for which libmosquitto loads cert_file and key_file again.
  const int sock = mosquitto_socket(mosq_);
  if (sock >= 0) ::shutdown(sock, SHUT_RDWR);
  return OkStatus();
}

StatusOr<std::unique_ptr<Transport>> NewMosquittoTransport(
    const MqttOptions& options) {
  auto transport = std::make_unique<MosquittoTransport>(options);
  KGR_RETURN_IF_ERROR(transport->Init());
  return std::unique_ptr<Transport>(std::move(transport));
}

}  // namespace kgr::mqtt_internal
