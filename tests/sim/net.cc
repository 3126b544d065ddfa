#include "net.h"

#include <deque>
#include <optional>
#include <string_view>

#include "kgr/frame.h"
#include "testing/fake_transport.h"  // TopicMatches, SplitSharedSubscription

namespace kgr::sim {

struct SimNet::Client {
  std::string name;
  Transport::Handler handler;
  bool connected = false;  // Connect() was called (the session exists)
  bool alive = true;       // the process runs
  bool link_up = true;
  std::vector<std::string> subscriptions;
  std::vector<std::pair<std::string, Bytes>> outbox;  // while offline
  std::deque<InFlight> held;  // for it while offline (its session)
  bool reachable(bool broker_up) const {
    return broker_up && alive && link_up && connected;
  }
};

namespace {

class SimTransport final : public Transport {
 public:
  SimTransport(SimNet& net, SimNet::Client& c, bool& broker_up)
      : net_(net), c_(c), broker_up_(broker_up) {}
  void SetHandler(Handler handler) override { c_.handler = std::move(handler); }
  Status Connect() override {
    c_.connected = true;
    return OkStatus();
  }
  Status Subscribe(const std::string& topic) override {
    if (!c_.connected) return FailedPreconditionError("not connected");
    c_.subscriptions.push_back(topic);
    return OkStatus();
  }
  Status Unsubscribe(const std::string& topic) override {
    std::erase(c_.subscriptions, topic);
    return OkStatus();
  }
  Status Publish(const std::string& topic,
                 std::span<const uint8_t> payload) override {
    if (!c_.connected) return FailedPreconditionError("not connected");
    Bytes p(payload.begin(), payload.end());
    if (!c_.reachable(broker_up_)) {
      c_.outbox.emplace_back(topic, std::move(p));  // sent on reconnect
      return OkStatus();
    }
    net_.Route(c_.name, topic, p);
    return OkStatus();
  }
  Status Disconnect() override { return OkStatus(); }

 private:
  SimNet& net_;
  SimNet::Client& c_;
  bool& broker_up_;
};

}  // namespace

SimNet::SimNet(Rng& rng, Trace& trace, std::function<uint64_t()> now_ms)
    : rng_(rng), trace_(trace), now_ms_(std::move(now_ms)) {}

SimNet::~SimNet() = default;

std::unique_ptr<Transport> SimNet::NewTransport(const std::string& name) {
  auto& slot = clients_[name];
  if (!slot) {
    slot = std::make_unique<Client>();
    slot->name = name;
  }
  return std::make_unique<SimTransport>(*this, *slot, broker_up_);
}

std::string SimNet::Describe(const std::string& from, const std::string& to,
                             const Bytes& payload) const {
  std::string s = from + " -> " + to + " ";
  auto h = PeekFrameHeader(payload);
  if (!h.ok()) return s + "(" + std::to_string(payload.size()) + " bytes)";
  char buf[96];
  std::snprintf(buf, sizeof buf, "%s req=%016llx ctr=%llu",
                std::string(FrameTypeName(h->type)).c_str(),
                static_cast<unsigned long long>(h->request_id),
                static_cast<unsigned long long>(h->counter % 100000000));
  return s + buf;
}

void SimNet::Enqueue(uint64_t at_ms, InFlight m) {
  queue_.emplace(std::make_pair(at_ms, seq_++), std::move(m));
}

namespace {}  // namespace

void SimNet::Route(const std::string& from, const std::string& topic,
                   const Bytes& payload) {
  ++stats_.published;
  if (observer_) observer_(from, topic, payload);
  const uint64_t now = now_ms_();
  // Shared subscriptions (clustered KS instances): each group gets the
  // message once, at one member the PRNG picks among the reachable ones
  // (else among all: it waits in that member's session).
  std::map<std::string, std::vector<std::string>> groups;
  for (auto& [name, c] : clients_) {
    if (!c->connected) continue;
    bool match = false;
    for (const auto& f : c->subscriptions) {
      auto shared = testing::SplitSharedSubscription(f);
      if (!shared) {
        match = match || testing::TopicMatches(f, topic);
      } else if (testing::TopicMatches(shared->second, topic)) {
        auto& members = groups[shared->first];
        if (members.empty() || members.back() != name) members.push_back(name);
      }
    }
    if (match) Send(from, name, topic, payload, now);
  }
  for (auto& [group, members] : groups) {
    std::vector<std::string> ready;
    for (const std::string& m : members) {
      if (clients_[m]->reachable(broker_up_)) ready.push_back(m);
    }
    const auto& pool = ready.empty() ? members : ready;
    Send(from, pool[rng_.Below(pool.size())], topic, payload, now);
  }
}

void SimNet::Send(const std::string& from, const std::string& name,
                  const std::string& topic, const Bytes& payload,
                  uint64_t now) {
  if (rng_.Chance(faults.drop)) {
    ++stats_.dropped;
    trace_.Add(now, "net: drop " + Describe(from, name, payload));
    return;
  }
  uint64_t at = now + rng_.Range(faults.latency_min_ms, faults.latency_max_ms);
  if (rng_.Chance(faults.delay)) {
    ++stats_.delayed;
    at += rng_.Range(0, faults.delay_max_ms);
    trace_.Add(now, "net: delay until " + std::to_string(at) + " " +
                        Describe(from, name, payload));
  }
  Enqueue(at, {from, name, topic, payload});
  if (rng_.Chance(faults.dup)) {
    ++stats_.duplicated;
    uint64_t later = at + rng_.Range(0, faults.delay_max_ms);
    trace_.Add(now, "net: duplicate at " + std::to_string(later) + " " +
                        Describe(from, name, payload));
    Enqueue(later, {from, name, topic, payload});
  }
}

uint64_t SimNet::NextDeliveryMs() const {
  return queue_.empty() ? UINT64_MAX : queue_.begin()->first.first;
}

std::vector<std::string> SimNet::DeliverDue() {
  std::vector<std::string> got;
  const uint64_t now = now_ms_();
  while (!queue_.empty() && queue_.begin()->first.first <= now) {
    InFlight m = std::move(queue_.begin()->second);
    queue_.erase(queue_.begin());
    auto it = clients_.find(m.to);
    if (it == clients_.end()) continue;
    Client& c = *it->second;
    if (!c.reachable(broker_up_) || !c.handler) {
      ++stats_.held;
      c.held.push_back(std::move(m));
      continue;
    }
    ++stats_.delivered;
    trace_.Add(now, "deliver " + Describe(m.from, m.to, m.payload));
    c.handler(m.topic, std::move(m.payload));
    got.push_back(m.to);
  }
  return got;
}

void SimNet::Reconnect(Client& c) {
  if (!c.reachable(broker_up_)) return;
  auto outbox = std::move(c.outbox);
  c.outbox.clear();
  for (auto& [topic, payload] : outbox) Route(c.name, topic, payload);
  const uint64_t now = now_ms_();
  while (!c.held.empty()) {  // in order, before anything newer
    Enqueue(now + faults.latency_min_ms, std::move(c.held.front()));
    c.held.pop_front();
  }
}

void SimNet::SetLinkUp(const std::string& name, bool up) {
  auto it = clients_.find(name);
  if (it == clients_.end()) return;
  it->second->link_up = up;
  if (up) Reconnect(*it->second);
}

bool SimNet::link_up(const std::string& name) const {
  auto it = clients_.find(name);
  return it != clients_.end() && it->second->link_up;
}

void SimNet::Kill(const std::string& name) {
  auto it = clients_.find(name);
  if (it == clients_.end()) return;
  it->second->alive = false;
  it->second->handler = nullptr;
  it->second->outbox.clear();
}

void SimNet::Revive(const std::string& name) {
  auto it = clients_.find(name);
  if (it == clients_.end()) return;
  it->second->alive = true;
  Reconnect(*it->second);
}

void SimNet::LoseSession(const std::string& name) {
  auto it = clients_.find(name);
  if (it == clients_.end()) return;
  stats_.lost_sessions += it->second->held.size();
  it->second->held.clear();
  for (auto q = queue_.begin(); q != queue_.end();) {
    if (q->second.to == name) {
      ++stats_.lost_sessions;
      q = queue_.erase(q);
    } else {
      ++q;
    }
  }
}

void SimNet::SetBrokerUp(bool up) {
  broker_up_ = up;
  if (!up) {
    stats_.lost_in_restart += queue_.size();
    queue_.clear();
    return;
  }
  for (auto& [name, c] : clients_) Reconnect(*c);
}

}  // namespace kgr::sim
