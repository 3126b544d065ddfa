// In-memory MQTT broker and Transport for unit tests.
//
//   FakeBroker broker;                       // queued delivery (default)
//   auto ks = broker.NewTransport("ks");
//   auto node = broker.NewTransport("n0a1b2c3d");
//   ks->SetHandler(...); ks->Connect(); ks->Subscribe("kgr/register");
//   node->Connect(); node->Publish("kgr/register", frame);
//   broker.Pump();                           // handlers run here, in order
//
// Semantics (a model of the real transport + Mosquitto):
// - Topic filters: exact match plus MQTT '+' and '#' wildcards. A message is
//   delivered at most once per transport, even with overlapping filters.
// - Delivery::kQueued: Publish only queues; PumpOne()/Pump() deliver one
//   message at a time from the test thread, so tests are deterministic and
//   a handler that publishes does not re-enter another handler.
//   Delivery::kImmediate: Publish delivers before returning (handlers run
//   nested inside Publish).
// - Nothing is retained: a message reaches only transports subscribed when
//   it is delivered.
// - SimulateDisconnect(): the transport goes offline like during a broker
//   outage with a persistent session: its Publish calls are buffered and
//   sent on SimulateReconnect(); messages for it are held and delivered
//   after reconnect. Subscriptions are kept.
// - Shared subscriptions "$share/<group>/<filter>": each message matching
//   the filter goes to one member of the group, round robin over the
//   connected members (online ones first), as Mosquitto spreads them.
// - SetAcl(): subscriptions the ACL refuses fail with PERMISSION_DENIED.
//
// Thread-safe; handlers are never called with an internal lock held. The
// broker and its transports may be destroyed in any order.
#ifndef KGR_TESTING_FAKE_TRANSPORT_H_
#define KGR_TESTING_FAKE_TRANSPORT_H_

#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "kgr/bytes.h"
#include "kgr/status.h"
#include "kgr/transport.h"

namespace kgr::testing {

// Whether MQTT topic filter `filter` matches topic name `topic`.
bool TopicMatches(std::string_view filter, std::string_view topic);
// "$share/<group>/<filter>" (MQTT 5 4.8.2; Mosquitto also for 3.1.1
// clients): the group and the filter; nullopt for a plain filter.
std::optional<std::pair<std::string, std::string>> SplitSharedSubscription(
    const std::string& filter);

struct PublishedMessage {
  std::string sender;  // the FakeTransport's name
  std::string topic;
  Bytes payload;
};

class FakeTransport;
struct FakeTransportRecord;  // internal

class FakeBroker {
 public:
  enum class Delivery { kQueued, kImmediate };
  // Decides whether transport `name` may subscribe to `filter`.
  using Acl =
      std::function<bool(const std::string& name, const std::string& filter)>;

  explicit FakeBroker(Delivery delivery = Delivery::kQueued);
  ~FakeBroker();
  FakeBroker(const FakeBroker&) = delete;
  FakeBroker& operator=(const FakeBroker&) = delete;

  // A transport attached to this broker, not connected yet. `name` (e.g. the
  // certificate CN) identifies it in published() and to the ACL.
  std::unique_ptr<FakeTransport> NewTransport(std::string name);

  // Delivers the oldest queued message; false if none was queued. Calling
  // it from a handler delivers nothing and returns false.
  bool PumpOne();
  // PumpOne() until the queue is empty (including messages published by
  // handlers meanwhile) or `max` messages were delivered. Returns how many.
  size_t Pump(size_t max = 100000);
  size_t queued() const;

  // Every accepted Publish (also dropped ones), in order.
  std::vector<PublishedMessage> published() const;
  void ClearPublished();
  // The next `n` published messages are recorded but never delivered.
  void DropNext(int n);
  // Drops every queued (and held) message that would reach the transport
  // `name`: what a broker loses when a client's session is gone. Returns
  // how many were dropped.
  size_t DropQueuedFor(const std::string& name);
  // Refuses subscriptions; nullptr (the default) allows all.
  void SetAcl(Acl acl);

  struct State;  // shared with the transports

 private:
  std::shared_ptr<State> state_;
};

class FakeTransport final : public Transport {
 public:
  ~FakeTransport() override;

  void SetHandler(Handler handler) override;
  // OK, or the status given to FailNextConnect().
  Status Connect() override;
  // FAILED_PRECONDITION before Connect(), INVALID_ARGUMENT for a malformed
  // filter, PERMISSION_DENIED if the ACL refuses, UNAVAILABLE while
  // disconnected by SimulateDisconnect().
  Status Subscribe(const std::string& topic) override;
  Status Unsubscribe(const std::string& topic) override;
  // FAILED_PRECONDITION before Connect(), INVALID_ARGUMENT for a wildcard,
  // or the status given to FailNextPublish(). Buffered while disconnected.
  Status Publish(const std::string& topic,
                 std::span<const uint8_t> payload) override;
  Status Disconnect() override;

  // Knobs.
  void FailNextConnect(Status status);
  void FailNextPublish(Status status);
  void SimulateDisconnect();
  void SimulateReconnect();

  const std::string& name() const { return name_; }
  bool connected() const;
  std::vector<std::string> subscriptions() const;

 private:
  friend class FakeBroker;
  FakeTransport(std::shared_ptr<FakeBroker::State> state, std::string name);

  std::shared_ptr<FakeBroker::State> state_;
  std::shared_ptr<FakeTransportRecord> record_;
  const std::string name_;
};

}  // namespace kgr::testing

#endif  // KGR_TESTING_FAKE_TRANSPORT_H_
