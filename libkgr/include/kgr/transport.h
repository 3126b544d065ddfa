// Transport: publish/subscribe of opaque frames (MQTT in production; an
// in-memory broker in unit tests). libkgr procedures never see Paho.
//
// Contract: Publish uses QoS 1 (MQTT: MqttOptions::qos, 0 with mqtt_qos 0,
// where a frame may be lost and the procedures retransmit) and never sets
// the retained flag. Messages
// arrive through the handler set with SetHandler, called from a transport
// thread; the handler must be cheap (enqueue and return). After a broker
// restart the transport reconnects and resubscribes by itself.
#ifndef KGR_TRANSPORT_H_
#define KGR_TRANSPORT_H_

#include <cstdint>
#include <functional>
#include <span>
#include <string>

#include "kgr/bytes.h"
#include "kgr/status.h"

namespace kgr {

class Transport {
 public:
  using Handler = std::function<void(const std::string& topic, Bytes payload)>;
  virtual ~Transport() = default;

  // Set before Connect(); not changed afterwards.
  virtual void SetHandler(Handler handler) = 0;
  // Connects and waits until the session is up (or the deadline passes).
  virtual Status Connect() = 0;
  // Waits for the broker's SUBACK. While the transport is reconnecting the
  // topic is held and subscribed as soon as the connection is back (OK).
  virtual Status Subscribe(const std::string& topic) = 0;
  virtual Status Unsubscribe(const std::string& topic) = 0;
  // Queues `payload` for delivery at QoS 1, not retained. Thread-safe.
  virtual Status Publish(const std::string& topic,
                         std::span<const uint8_t> payload) = 0;
  virtual Status Disconnect() = 0;
  // Drops the connection so that it is made again at once, reading the
  // client certificate and key files anew (after a renewal). Held topics
  // and queued messages are kept as for any lost connection. OK if not
  // connected (the next connect reads the files anyway).
  virtual Status Reconnect() {
    return FailedPreconditionError("this transport cannot reconnect on demand");
  }
};

}  // namespace kgr

#endif  // KGR_TRANSPORT_H_
