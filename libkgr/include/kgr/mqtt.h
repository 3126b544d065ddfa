// MQTT implementation of Transport, over one of two client libraries (no
// library type appears here). See docs/broker.md for the broker side and
// docs/performance.md for how the two compare.
//
// Session: MQTT 3.1.1, persistent session (clean_session=false) under
// `client_id`, so QoS 1 messages published to us during a short disconnect
// are queued by the broker. After every (re)connect the transport
// resubscribes every topic it holds and sets TCP_NODELAY on its socket.
#ifndef KGR_MQTT_H_
#define KGR_MQTT_H_

#include <memory>
#include <string>
#include <string_view>

#include "kgr/status.h"
#include "kgr/transport.h"

namespace kgr {

// The client library under the transport. Both speak MQTT 3.1.1 with the
// same contract. kPaho: Eclipse Paho C++ async client (one receive and one
// send thread per process, shared by all its clients). kMosquitto:
// libmosquitto, driven by one network thread per transport that does all
// socket and TLS work (fewer thread hand-offs per message; socket
// descriptors must stay below FD_SETSIZE, 1024).
enum class MqttClient { kPaho, kMosquitto };

// "paho" or "mosquitto"; INVALID_ARGUMENT otherwise.
StatusOr<MqttClient> ParseMqttClient(std::string_view name);
std::string_view MqttClientName(MqttClient client);

struct MqttOptions {
  MqttClient client = MqttClient::kMosquitto;
  std::string host = "127.0.0.1";
  int port = 8883;
  // TLS needs ca_file (PEM, the KED CA). cert_file and key_file (PEM) are
  // both set (client certificate; the broker requires one) or both empty.
  bool tls = true;
  std::string ca_file, cert_file, key_file;
  // Stable id of the persistent session; use the certificate CN. Empty: a
  // random id (the session then lives only as long as this transport).
  std::string client_id;
  int keepalive_s = 30;
  // Connect() gives up after this long (UNAVAILABLE).
  int connect_timeout_ms = 5000;
  // QoS of Publish and Subscribe: 0, 1 or 2 (the executables: mqtt_qos, 0
  // or 1). A message is delivered at the lower of the publisher's and the
  // subscription's QoS. At 0, publishes made while reconnecting are held
  // and sent after the reconnect as at 1, but what was in flight on a lost
  // connection is gone: kgr's end-to-end retransmission recovers it
  // (docs/reliability.md).
  int qos = 1;
  // Automatic reconnect back-off bounds, in seconds.
  int reconnect_min_s = 1;
  int reconnect_max_s = 4;
  // Publish() while the connection is down queues up to this many messages
  // in memory (sent after reconnect); beyond it Publish returns
  // RESOURCE_EXHAUSTED.
  int max_buffered_messages = 1000;
  // true: a clean session, which the broker drops when the connection does
  // (nothing is queued for us while away; subscriptions are made again on
  // every connect as always). For a member of a shared subscription group
  // (a clustered KS instance): Mosquitto 2.0 keeps an offline persistent
  // member in the group's round robin and queues every K-th message for it,
  // so a dead instance would swallow its share of the frames until it
  // comes back (docs/cluster.md, "A killed instance").
  bool clean_session = false;
};

// Validates `options` (INVALID_ARGUMENT, or NOT_FOUND for an unreadable
// ca/cert/key file) and creates an unconnected transport.
//
// Errors of the returned transport: UNAVAILABLE when the broker cannot be
// reached or the TLS handshake fails (wrong CA, no client certificate) or
// Connect() times out; PERMISSION_DENIED when the broker refuses a
// subscription (SUBACK 0x80) or the CONNECT; FAILED_PRECONDITION when not
// connected yet; INVALID_ARGUMENT for a bad topic; RESOURCE_EXHAUSTED when
// the offline/in-flight queue is full; INTERNAL for anything else Paho
// reports. All methods are thread-safe; the handler runs on the client
// library's network thread.
StatusOr<std::unique_ptr<Transport>> NewMqttTransport(
    const MqttOptions& options);

}  // namespace kgr

#endif  // KGR_MQTT_H_
