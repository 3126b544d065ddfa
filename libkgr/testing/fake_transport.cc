#include "testing/fake_transport.h"

#include <algorithm>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <utility>

namespace kgr::testing {

namespace {

std::vector<std::string_view> Levels(std::string_view s) {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (true) {
    size_t end = s.find('/', start);
    if (end == std::string_view::npos) {
      out.push_back(s.substr(start));
      return out;
    }
    out.push_back(s.substr(start, end - start));
    start = end + 1;
  }
}

}  // namespace

std::optional<std::pair<std::string, std::string>> SplitSharedSubscription(
    const std::string& f) {
  constexpr std::string_view kShare = "$share/";
  if (f.compare(0, kShare.size(), kShare) != 0) return std::nullopt;
  size_t slash = f.find('/', kShare.size());
  if (slash == std::string::npos) return std::nullopt;
  return std::make_pair(f.substr(kShare.size(), slash - kShare.size()),
                        f.substr(slash + 1));
}

bool TopicMatches(std::string_view filter, std::string_view topic) {
  // MQTT 4.7.2: wildcards at the first level do not match "$..." topics.
  if (!filter.empty() && (filter[0] == '+' || filter[0] == '#') &&
      !topic.empty() && topic[0] == '$') {
    return false;
  }
  std::vector<std::string_view> f = Levels(filter), t = Levels(topic);
  for (size_t i = 0; i < f.size(); ++i) {
    if (f[i] == "#") return true;  // the rest, including the parent level
    if (i >= t.size()) return false;
    if (f[i] != "+" && f[i] != t[i]) return false;
  }
  return f.size() == t.size();
}

namespace {

bool ValidFilter(const std::string& filter) {
  if (filter.empty()) return false;
  size_t start = 0;
  while (true) {
    size_t end = filter.find('/', start);
    std::string level = filter.substr(
        start, end == std::string::npos ? std::string::npos : end - start);
    if (level.find_first_of("+#") != std::string::npos && level != "+" &&
        level != "#") {
      return false;
    }
    if (level == "#" && end != std::string::npos) return false;
    if (end == std::string::npos) return true;
    start = end + 1;
  }
}

struct Message {
  std::string topic;
  Bytes payload;
};

// Whether subscription `f` (plain or shared) matches `topic`.
bool SubscriptionMatches(const std::string& f, const std::string& topic) {
  auto shared = SplitSharedSubscription(f);
  return TopicMatches(shared ? shared->second : f, topic);
}

}  // namespace

struct FakeTransportRecord {
  std::string name;
  Transport::Handler handler;
  bool connected = false;
  bool online = true;
  bool gone = false;  // the FakeTransport was destroyed
  std::set<std::string> subscriptions;
  std::vector<Message> held;    // for us while offline
  std::vector<Message> outbox;  // our publishes while offline
  std::optional<Status> fail_next_connect;
  std::optional<Status> fail_next_publish;
};

struct FakeBroker::State {
  struct Entry {
    Message message;
    std::shared_ptr<FakeTransportRecord>
        target;  // null: every matching subscriber
  };

  mutable std::mutex mu;
  Delivery delivery = Delivery::kQueued;
  std::vector<std::shared_ptr<FakeTransportRecord>> records;
  std::deque<Entry> queue;
  std::vector<PublishedMessage> published;
  int drop_next = 0;
  Acl acl;
  bool pumping = false;
  std::map<std::string, size_t> share_turn;  // per shared group: round robin

  // Who gets `e` now; holds it for offline subscribers. Requires mu.
  std::vector<std::pair<Transport::Handler, Message>> Route(const Entry& e) {
    std::vector<std::pair<Transport::Handler, Message>> out;
    auto consider = [&](const std::shared_ptr<FakeTransportRecord>& r) {
      if (r->gone || !r->connected) return;
      if (!r->online) {
        r->held.push_back(e.message);
      } else if (r->handler) {
        out.emplace_back(r->handler, e.message);
      }
    };
    if (e.target) {
      consider(e.target);
      return out;
    }
    // A shared subscription's group gets the message once: the next of
    // its members in turn that is connected (online ones first).
    std::map<std::string, std::vector<std::shared_ptr<FakeTransportRecord>>>
        groups;
    for (const auto& r : records) {
      bool plain = false;
      for (const std::string& f : r->subscriptions) {
        auto shared = SplitSharedSubscription(f);
        if (!shared) {
          plain = plain || TopicMatches(f, e.message.topic);
        } else if (TopicMatches(shared->second, e.message.topic)) {
          auto& members = groups[shared->first];
          if (members.empty() || members.back() != r) members.push_back(r);
        }
      }
      if (plain) consider(r);
    }
    for (auto& [group, members] : groups) {
      if (auto pick = PickShared(group, members)) consider(pick);
    }
    return out;
  }

  std::shared_ptr<FakeTransportRecord> PickShared(
      const std::string& group,
      const std::vector<std::shared_ptr<FakeTransportRecord>>& members) {
    size_t& turn = share_turn[group];
    for (bool need_online : {true, false}) {
      for (size_t i = 0; i < members.size(); ++i) {
        const auto& r = members[(turn + i) % members.size()];
        if (r->gone || !r->connected || (need_online && !r->online)) continue;
        turn = (turn + i + 1) % members.size();
        return r;
      }
    }
    return nullptr;
  }

  static void Call(std::vector<std::pair<Transport::Handler, Message>> calls) {
    for (auto& [handler, m] : calls) handler(m.topic, std::move(m.payload));
  }

  // Accepts one publish from `sender`; delivers now in kImmediate mode.
  void Accept(const std::string& sender, Message m) {
    std::vector<std::pair<Transport::Handler, Message>> calls;
    {
      std::lock_guard<std::mutex> lock(mu);
      published.push_back({sender, m.topic, m.payload});
      if (drop_next > 0) {
        --drop_next;
        return;
      }
      Entry e{std::move(m), nullptr};
      if (delivery == Delivery::kQueued) {
        queue.push_back(std::move(e));
        return;
      }
      calls = Route(e);
    }
    Call(std::move(calls));
  }

  // Sends messages held for `r` while it was offline.
  void Release(const std::shared_ptr<FakeTransportRecord>& r,
               std::vector<Message> held) {
    for (Message& m : held) {
      std::vector<std::pair<Transport::Handler, Message>> calls;
      {
        std::lock_guard<std::mutex> lock(mu);
        Entry e{std::move(m), r};
        if (delivery == Delivery::kQueued) {
          queue.push_back(std::move(e));
          continue;
        }
        calls = Route(e);
      }
      Call(std::move(calls));
    }
  }
};

// ---------------------------------------------------------------- broker

FakeBroker::FakeBroker(Delivery delivery) : state_(std::make_shared<State>()) {
  state_->delivery = delivery;
}

FakeBroker::~FakeBroker() = default;

std::unique_ptr<FakeTransport> FakeBroker::NewTransport(std::string name) {
  return std::unique_ptr<FakeTransport>(
      new FakeTransport(state_, std::move(name)));
}

bool FakeBroker::PumpOne() {
  std::vector<std::pair<Transport::Handler, Message>> calls;
  {
    std::lock_guard<std::mutex> lock(state_->mu);
    if (state_->pumping || state_->queue.empty()) return false;
    State::Entry e = std::move(state_->queue.front());
    state_->queue.pop_front();
    calls = state_->Route(e);
    state_->pumping = true;
  }
  State::Call(std::move(calls));
  std::lock_guard<std::mutex> lock(state_->mu);
  state_->pumping = false;
  return true;
}

size_t FakeBroker::Pump(size_t max) {
  size_t n = 0;
  while (n < max && PumpOne()) ++n;
  return n;
}

size_t FakeBroker::queued() const {
  std::lock_guard<std::mutex> lock(state_->mu);
  return state_->queue.size();
}

std::vector<PublishedMessage> FakeBroker::published() const {
  std::lock_guard<std::mutex> lock(state_->mu);
  return state_->published;
}

void FakeBroker::ClearPublished() {
  std::lock_guard<std::mutex> lock(state_->mu);
  state_->published.clear();
}

size_t FakeBroker::DropQueuedFor(const std::string& name) {
  std::lock_guard<std::mutex> lock(state_->mu);
  std::shared_ptr<FakeTransportRecord> who;
  for (const auto& r : state_->records) {
    if (r->name == name && !r->gone) who = r;
  }
  if (!who) return 0;
  size_t before = state_->queue.size();
  std::erase_if(state_->queue, [&](const State::Entry& e) {
    if (e.target) return e.target == who;
    for (const auto& f : who->subscriptions) {
      if (SubscriptionMatches(f, e.message.topic)) return true;
    }
    return false;
  });
  who->held.clear();
  return before - state_->queue.size();
}

void FakeBroker::DropNext(int n) {
  std::lock_guard<std::mutex> lock(state_->mu);
  state_->drop_next = n;
}

void FakeBroker::SetAcl(Acl acl) {
  std::lock_guard<std::mutex> lock(state_->mu);
  state_->acl = std::move(acl);
}

// ------------------------------------------------------------- transport

FakeTransport::FakeTransport(std::shared_ptr<FakeBroker::State> state,
                             std::string name)
    : state_(std::move(state)),
      record_(std::make_shared<FakeTransportRecord>()),
      name_(std::move(name)) {
  record_->name = name_;
  std::lock_guard<std::mutex> lock(state_->mu);
  state_->records.push_back(record_);
}

FakeTransport::~FakeTransport() {
  std::lock_guard<std::mutex> lock(state_->mu);
  record_->gone = true;
  auto& v = state_->records;
  v.erase(std::remove(v.begin(), v.end(), record_), v.end());
}

void FakeTransport::SetHandler(Handler handler) {
  std::lock_guard<std::mutex> lock(state_->mu);
  record_->handler = std::move(handler);
}

Status FakeTransport::Connect() {
  std::lock_guard<std::mutex> lock(state_->mu);
  if (record_->fail_next_connect) {
    Status s = *record_->fail_next_connect;
    record_->fail_next_connect.reset();
    return s;
  }
  record_->connected = true;
  return OkStatus();
}

Status FakeTransport::Subscribe(const std::string& topic) {
  if (!ValidFilter(topic)) {
    return InvalidArgumentError("fake mqtt: bad topic filter '" + topic + "'");
  }
  std::lock_guard<std::mutex> lock(state_->mu);
  if (!record_->connected) {
    return FailedPreconditionError("fake mqtt subscribe: not connected");
  }
  if (!record_->online) {
    return UnavailableError("fake mqtt subscribe: disconnected");
  }
  if (state_->acl && !state_->acl(name_, topic)) {
    return PermissionDeniedError("fake mqtt subscribe: '" + topic +
                                 "' refused by the broker");
  }
  record_->subscriptions.insert(topic);
  return OkStatus();
}

Status FakeTransport::Unsubscribe(const std::string& topic) {
  std::lock_guard<std::mutex> lock(state_->mu);
  if (!record_->connected) {
    return FailedPreconditionError("fake mqtt unsubscribe: not connected");
  }
  record_->subscriptions.erase(topic);
  return OkStatus();
}

Status FakeTransport::Publish(const std::string& topic,
                              std::span<const uint8_t> payload) {
  if (topic.empty() || topic.find_first_of("+#") != std::string::npos) {
    return InvalidArgumentError("fake mqtt: bad topic name '" + topic + "'");
  }
  Message m{topic, Bytes(payload.begin(), payload.end())};
  {
    std::lock_guard<std::mutex> lock(state_->mu);
    if (!record_->connected) {
      return FailedPreconditionError("fake mqtt publish: not connected");
    }
    if (record_->fail_next_publish) {
      Status s = *record_->fail_next_publish;
      record_->fail_next_publish.reset();
      return s;
    }
    if (!record_->online) {
      record_->outbox.push_back(std::move(m));
      return OkStatus();
    }
  }
  state_->Accept(name_, std::move(m));
  return OkStatus();
}

Status FakeTransport::Disconnect() {
  std::lock_guard<std::mutex> lock(state_->mu);
  record_->connected = false;
  record_->online = true;
  record_->held.clear();
  record_->outbox.clear();
  return OkStatus();
}

void FakeTransport::FailNextConnect(Status status) {
  std::lock_guard<std::mutex> lock(state_->mu);
  record_->fail_next_connect = std::move(status);
}

void FakeTransport::FailNextPublish(Status status) {
  std::lock_guard<std::mutex> lock(state_->mu);
  record_->fail_next_publish = std::move(status);
}

void FakeTransport::SimulateDisconnect() {
  std::lock_guard<std::mutex> lock(state_->mu);
  record_->online = false;
}

void FakeTransport::SimulateReconnect() {
  std::vector<Message> outbox, held;
  {
    std::lock_guard<std::mutex> lock(state_->mu);
    if (record_->online) return;
    record_->online = true;
    outbox.swap(record_->outbox);
    held.swap(record_->held);
  }
  state_->Release(record_, std::move(held));
  for (Message& m : outbox) state_->Accept(name_, std::move(m));
}

bool FakeTransport::connected() const {
  std::lock_guard<std::mutex> lock(state_->mu);
  return record_->connected && record_->online;
}

std::vector<std::string> FakeTransport::subscriptions() const {
  std::lock_guard<std::mutex> lock(state_->mu);
  return {record_->subscriptions.begin(), record_->subscriptions.end()};
}

}  // namespace kgr::testing
