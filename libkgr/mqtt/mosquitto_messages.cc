// MosquittoTransport: subscribe, unsubscribe, publish, and the library's
// callbacks that answer them (CONNACK with the resubscription, messages,
// SUBACK/UNSUBACK). See mosquitto_transport.h.
#include <mosquitto.h>

#include <exception>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "mqtt/mosquitto_status.h"
#include "mqtt/mosquitto_transport.h"
#include "mqtt/mqtt_common.h"
#include "spdlog/spdlog.h"

namespace kgr::mqtt_internal {
namespace {

constexpr int kSubackRefused = 0x80;  // MQTT 3.1.1 SUBACK "Failure"

}  // namespace

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

}  // namespace kgr::mqtt_internal
