// The simulated broker: an MQTT broker with persistent sessions between
// the KS and the nodes, whose every delivery is decided by the seeded
// PRNG: latency (so messages reorder), loss, duplication and long delays
// per delivery; clients whose link goes down (their publishes are buffered
// by their transport, messages for them held in their session); client
// processes that die (their buffered publishes are gone); lost sessions;
// and broker restarts (every message in flight is lost). Shared
// subscriptions ($share/<group>/<filter>) hand a message to one member.
#ifndef KGR_TESTS_SIM_NET_H_
#define KGR_TESTS_SIM_NET_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "kgr/bytes.h"
#include "kgr/transport.h"
#include "rng.h"
#include "trace.h"

namespace kgr::sim {

struct NetFaults {
  double drop = 0;   // per delivery: lost
  double dup = 0;    // per delivery: a second copy arrives later
  double delay = 0;  // per delivery: held back up to delay_max_ms
  uint64_t latency_min_ms = 1;
  uint64_t latency_max_ms = 1;  // above min: deliveries reorder
  uint64_t delay_max_ms = 0;
};

struct NetStats {
  uint64_t published = 0, delivered = 0, dropped = 0, duplicated = 0,
           delayed = 0, held = 0, lost_in_restart = 0, lost_sessions = 0;
};

class SimNet {
 public:
  // Called for every message that reaches the broker, before delivery.
  using Observer =
      std::function<void(const std::string& sender, const std::string& topic,
                         const Bytes& payload)>;
  // `now_ms`: the simulated time, for the trace (ms since the run began).
  SimNet(Rng& rng, Trace& trace, std::function<uint64_t()> now_ms);
  ~SimNet();

  // The transport of client `name` (its certificate CN). The net must
  // outlive it. One per client, reused across restarts of its process.
  std::unique_ptr<Transport> NewTransport(const std::string& name);
  void SetObserver(Observer o) { observer_ = std::move(o); }

  // The client's network link (offline, partition).
  void SetLinkUp(const std::string& name, bool up);
  bool link_up(const std::string& name) const;
  // The client's process died: handler and buffered publishes are gone;
  // messages for it wait in its session. Revive() after a new handler is
  // set (Transport::SetHandler) delivers them.
  void Kill(const std::string& name);
  void Revive(const std::string& name);
  // The broker forgets the client's session: held and in-flight messages
  // for it are lost.
  void LoseSession(const std::string& name);
  // A broker restart: down, every link is down and every message in
  // flight is lost; up, clients reconnect and flush what they buffered.
  void SetBrokerUp(bool up);
  bool broker_up() const { return broker_up_; }

  // When the next message is due (UINT64_MAX: none), in the now_ms time.
  uint64_t NextDeliveryMs() const;
  // Delivers every message due by now, in order of (time, sequence).
  // Returns the names of the clients that got messages, in order.
  std::vector<std::string> DeliverDue();
  size_t in_flight() const { return queue_.size(); }

  NetFaults faults;
  const NetStats& stats() const { return stats_; }

  struct Client;  // internal
  // Internal (SimTransport): a publish reaching the broker.
  void Route(const std::string& from, const std::string& topic,
             const Bytes& payload);

 private:
  struct InFlight {
    std::string from, to, topic;
    Bytes payload;
  };
  void Enqueue(uint64_t at_ms, InFlight m);
  // One delivery to client `name`, under the message faults.
  void Send(const std::string& from, const std::string& name,
            const std::string& topic, const Bytes& payload, uint64_t now);
  // Link up, process alive and broker up: flush its outbox, release held.
  void Reconnect(Client& c);
  std::string Describe(const std::string& from, const std::string& to,
                       const Bytes& payload) const;

  Rng& rng_;
  Trace& trace_;
  std::function<uint64_t()> now_ms_;
  Observer observer_;
  bool broker_up_ = true;
  uint64_t seq_ = 0;
  std::map<std::pair<uint64_t, uint64_t>, InFlight> queue_;
  std::map<std::string, std::unique_ptr<Client>> clients_;
  NetStats stats_;
};

}  // namespace kgr::sim

#endif  // KGR_TESTS_SIM_NET_H_
