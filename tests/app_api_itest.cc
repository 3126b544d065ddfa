// The application API (docs/api.md) in one process over a real TLS
// Mosquitto: two nodes of the KedITest harness, each with its AppApi (the
// socket, I/O thread and router `kgr-node run` serves), and the C++ client
// (kgr/app_client.h) on the sockets: request/response and one-way, a slow
// subscriber, and the bench of the API against the in-process NodeClient.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <thread>

#include "daemon/app_router.h"
#include "harness/ked_itest.h"
#include "kgr/app_client.h"

namespace kgr {
namespace {

using Party = harness::ItestNode;
using Clock = std::chrono::steady_clock;

class AppApiITest : public harness::KedITest {
 protected:
  void SetUp() override {
    KedITest::SetUp();
    a_ = &AddNode({});
    b_ = &AddNode({a_->n_id});
    for (Party* p : {a_, b_}) {
      ASSERT_TRUE(Await([&](DoneCallback d) { p->client->Register(d); }).ok());
    }
    ASSERT_TRUE(OnLoop([&] { return a_->client->LoadPeers({b_->n_id}); }).ok());
    ASSERT_TRUE(OnLoop([&] { return b_->client->LoadPeers({a_->n_id}); }).ok());
  }
  void TearDown() override {
    ticking_ = false;
    if (ticker_.joinable()) ticker_.join();
    OnLoop([&] {
      apis_.clear();
      return 0;
    });
    KedITest::TearDown();
  }
  // Starts the API of both nodes; b's queues at most `queue` events.
  void StartApis(size_t queue = 1024) {
    for (Party* p : {a_, b_}) {
      AppApiOptions o;
      o.server.path = dir_ + "/" + FormatNodeId(p->n_id) + ".sock";
      o.server.queue_messages = p == b_ ? queue : 1024;
      auto api = OnLoop([&] { return AppApi::Start(o, *p->client, loop_); });
      ASSERT_TRUE(api.ok()) << api.status().ToString();
      apis_.push_back(std::move(*api));
    }
    ticker_ = std::thread([this] {
      while (ticking_) {
        uint64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                           Clock::now().time_since_epoch())
                           .count();
        loop_.Post([this, now] {
          for (auto& api : apis_) api->Tick(now);
        });
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
    });
  }
  std::unique_ptr<AppClient> Connect(Party* p, const std::string& name) {
    auto c =
        AppClient::Connect(dir_ + "/" + FormatNodeId(p->n_id) + ".sock", name);
    EXPECT_TRUE(c.ok()) << c.status().ToString();
    return c.ok() ? std::move(*c) : nullptr;
  }

  Party* a_ = nullptr;
  Party* b_ = nullptr;
  std::vector<std::unique_ptr<AppApi>> apis_;
  std::atomic<bool> ticking_{true};
  std::thread ticker_;
};

Bytes B(const std::string& s) { return Bytes(s.begin(), s.end()); }

TEST_F(AppApiITest, RequestOneWayAndStatusThroughTheCppClient) {
  StartApis();
  auto sender = Connect(a_, "sender");
  auto receiver = Connect(b_, "receiver");
  ASSERT_TRUE(sender && receiver);
  EXPECT_EQ(receiver->n_id(), b_->n_id);
  ASSERT_TRUE(receiver->Subscribe({a_->n_id}).ok());
  // One-way, with no key yet: the daemon gets one first.
  ASSERT_TRUE(sender->Send(b_->n_id, B("reading 1")).ok());
  StatusOr<AppEvent> ev = receiver->NextEvent(5000);
  while (ev.ok() && ev->type != "message") ev = receiver->NextEvent(5000);
  ASSERT_TRUE(ev.ok()) << ev.status().ToString();
  EXPECT_EQ(ev->peer, a_->n_id);
  EXPECT_EQ(ev->data, B("reading 1"));
  EXPECT_FALSE(ev->request);
  EXPECT_GE(ev->key_version, 1u);
  EXPECT_GT(ev->counter, 0u);
  // Request: b's application answers.
  std::thread answerer([&] {
    for (;;) {
      auto e = receiver->NextEvent(10000);
      if (!e.ok()) return;
      if (e->type == "message" && e->request) {
        Bytes reply = B("got ");
        reply.insert(reply.end(), e->data.begin(), e->data.end());
        EXPECT_TRUE(receiver->Answer(e->token, reply).ok());
        return;
      }
    }
  });
  auto reply = sender->Request(b_->n_id, B("ping"));
  answerer.join();
  ASSERT_TRUE(reply.ok()) << reply.status().ToString();
  EXPECT_EQ(*reply, B("got ping"));
  auto st = sender->GetStatus();
  ASSERT_TRUE(st.ok());
  EXPECT_EQ((*st)["pairs"][0]["peer"], FormatNodeId(b_->n_id));
  EXPECT_EQ((*st)["pairs"][0]["has_key"], true);
  // Bad requests are refused with the field named; the size limit holds.
  EXPECT_EQ(sender->Send(b_->n_id, Bytes(kAppMaxData + 1)).code(),
            StatusCode::kInvalidArgument);
  // Nobody on a subscribes: b's message is refused by a's daemon.
  auto back = Connect(b_, "back");
  Status none = back->Send(a_->n_id, B("anyone?"));
  EXPECT_EQ(none.code(), StatusCode::kUnavailable) << none.ToString();
}

TEST_F(AppApiITest, SlowSubscriberLosesCountedEventsAndHoldsUpNobody) {
  constexpr size_t kQueue = 16;
  constexpr int kMessages = 1500;
  StartApis(kQueue);
  auto sender = Connect(a_, "sender");
  auto fast = Connect(b_, "fast");
  auto slow = Connect(b_, "slow");
  ASSERT_TRUE(sender && fast && slow);
  ASSERT_TRUE(fast->Subscribe().ok());
  ASSERT_TRUE(slow->Subscribe().ok());  // and then reads nothing for a while
  std::vector<int> got;
  std::thread reader([&] {
    while (got.size() < kMessages) {
      auto e = fast->NextEvent(20000);
      if (!e.ok()) return;
      if (e->type == "message")
        got.push_back(
            std::stoi(std::string(e->data.begin(), e->data.begin() + 8)));
    }
  });
  std::string pad(1000, 'p');
  Status failed;
  for (int i = 0; i < kMessages && failed.ok(); ++i) {
    char num[9];
    std::snprintf(num, sizeof(num), "%08d", i);
    Status st = sender->Send(b_->n_id, B(num + pad));
    // docs/api.md: RESOURCE_EXHAUSTED is "send again later" (the fast
    // application fell behind on a loaded machine).
    for (int tries = 0;
         st.code() == StatusCode::kResourceExhausted && tries < 2000; ++tries) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
      st = sender->Send(b_->n_id, B(num + pad));
    }
    if (!st.ok()) failed = st.Annotate("message " + std::to_string(i));
  }
  reader.join();  // before any ASSERT: a joinable thread must not be left
  ASSERT_TRUE(failed.ok()) << failed.ToString();
  ASSERT_EQ(got.size(), size_t{kMessages});
  for (int i = 0; i < kMessages; ++i) ASSERT_EQ(got[i], i);
  // The slow one: at most its queue and what the socket buffers, and the
  // rest counted, in one "dropped" event before what it gets next.
  size_t messages = 0;
  uint64_t dropped = 0;
  for (;;) {
    auto e = slow->NextEvent(500);
    if (!e.ok()) break;
    if (e->type == "message") ++messages;
    if (e->type == "dropped") dropped += e->count;
  }
  EXPECT_LT(messages, size_t{kMessages} / 10);
  // The drops are told before the next message the slow one gets (some may
  // have been told above already, if deliveries were still arriving).
  ASSERT_TRUE(sender->Send(b_->n_id, B("00000000 after")).ok());
  bool told = dropped > 0;
  for (;;) {
    auto e = slow->NextEvent(2000);
    ASSERT_TRUE(e.ok()) << "no dropped event and no message after it";
    if (e->type == "dropped") {
      dropped += e->count;
      told = true;
    }
    if (e->type == "message") {
      ASSERT_TRUE(told) << "a message before the drops were told";
      ++messages;
      if (std::string(e->data.begin(), e->data.end()) == "00000000 after") {
        break;
      }
    }
  }
  std::printf("slow subscriber: %zu messages delivered, %llu dropped\n",
              messages, static_cast<unsigned long long>(dropped));
  // Every message was delivered or counted (and key events may be among
  // the dropped: key_ready, key_renewed).
  EXPECT_GE(messages + dropped, size_t{kMessages} + 1);
  EXPECT_LE(messages + dropped, size_t{kMessages} + 4);
}

// When no application has room, the message is refused ("send again
// later") and must not count as dropped for anyone: the sender sends it
// again. (Before, every refused attempt was counted as a drop for every
// subscriber, so counts ran far above what was sent.)
TEST_F(AppApiITest, RefusedMessagesAreNotCountedAsDropped) {
  constexpr size_t kQueue = 16;
  StartApis(kQueue);
  auto sender = Connect(a_, "sender");
  auto one = Connect(b_, "one");
  auto two = Connect(b_, "two");
  ASSERT_TRUE(sender && one && two);
  ASSERT_TRUE(one->Subscribe().ok());
  ASSERT_TRUE(two->Subscribe().ok());  // neither reads for now
  std::string pad(1000, 'p');
  size_t accepted = 0, refused = 0;
  for (int i = 0; i < 300; ++i) {
    Status st = sender->Send(b_->n_id, B(std::to_string(i) + pad));
    if (st.ok())
      ++accepted;
    else if (st.code() == StatusCode::kResourceExhausted)
      ++refused;
    else
      FAIL() << i << ": " << st.ToString();
  }
  ASSERT_GT(refused, 0u) << "both queues should have filled";
  std::vector<size_t> messages(2, 0);
  std::vector<uint64_t> dropped(2, 0);
  auto read = [&](AppClient* app, size_t k, int timeout_ms, bool until_last) {
    for (;;) {
      auto e = app->NextEvent(timeout_ms);
      if (!e.ok()) return !until_last;
      if (e->type == "dropped") dropped[k] += e->count;
      if (e->type != "message") continue;
      ++messages[k];
      if (until_last && std::string(e->data.begin(), e->data.end()) == "last")
        return true;
    }
  };
  ASSERT_TRUE(read(one.get(), 0, 500, false));
  ASSERT_TRUE(read(two.get(), 1, 500, false));
  // Drops are told with the next event: one more message.
  ASSERT_TRUE(sender->Send(b_->n_id, B("last")).ok());
  ++accepted;
  ASSERT_TRUE(read(one.get(), 0, 5000, true)) << "no last message";
  ASSERT_TRUE(read(two.get(), 1, 5000, true)) << "no last message";
  for (size_t k = 0; k < 2; ++k) {
    // Key events may be among the dropped (key_ready, key_renewed).
    EXPECT_LE(messages[k] + dropped[k], accepted + 3)
        << "app " << k << ": " << messages[k] << " messages, " << dropped[k]
        << " dropped; " << accepted << " accepted, " << refused << " refused";
    EXPECT_GE(messages[k], kQueue);
  }
}

struct Latencies {
  std::vector<double> us;
  double seconds = 0;
  nlohmann::json Json() {
    std::sort(us.begin(), us.end());
    return {{"messages", us.size()},
            {"msgs_per_s", static_cast<int>(us.size() / seconds)},
            {"p50_us", static_cast<int>(us[us.size() / 2])},
            {"p99_us", static_cast<int>(us[us.size() * 99 / 100])}};
  }
};

template <typename F>
Latencies Measure(int n, F one) {
  Latencies l;
  auto start = Clock::now();
  for (int i = 0; i < n; ++i) {
    auto t = Clock::now();
    one(i);
    l.us.push_back(
        std::chrono::duration<double, std::micro>(Clock::now() - t).count());
  }
  l.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return l;
}

// Bench (prints one JSON line): sequential messages a -> b through the
// in-process NodeClient (b's daemon answers by itself), through the API
// one-way (b's application subscribed) and as requests b's application
// answers. KGR_APP_BENCH_N messages each (default 1000).
TEST_F(AppApiITest, BenchApiAgainstNodeClient) {
  const char* env = std::getenv("KGR_APP_BENCH_N");
  int n = env ? std::atoi(env) : 1000;
  StartApis();
  auto sender = Connect(a_, "bench");
  auto receiver = Connect(b_, "bench-rx");
  ASSERT_TRUE(sender && receiver);
  ASSERT_TRUE(receiver->Subscribe().ok());
  ASSERT_TRUE(Await([&](DoneCallback d) {
                a_->client->RequestKey(b_->n_id, false, d);
              }).ok());
  std::atomic<bool> stop{false};
  std::thread app([&] {
    while (!stop) {
      auto e = receiver->NextEvent(200);
      if (e.ok() && e->request) (void)receiver->Answer(e->token, e->data);
    }
  });
  Bytes data(64, 'd');
  bool all_ok = true;
  Latencies node = Measure(n, [&](int) {
    std::promise<bool> p;
    loop_.Post([&] {
      a_->client->Send(b_->n_id, SecretBytes(data),
                       [&](StatusOr<SecretBytes> r) { p.set_value(r.ok()); });
    });
    all_ok = p.get_future().get() && all_ok;
  });
  Latencies oneway = Measure(
      n, [&](int) { all_ok = sender->Send(b_->n_id, data).ok() && all_ok; });
  Latencies request = Measure(
      n, [&](int) { all_ok = sender->Request(b_->n_id, data).ok() && all_ok; });
  stop = true;
  app.join();
  EXPECT_TRUE(all_ok);
  nlohmann::json out = {{"bench", "app_api"},
                        {"payload_bytes", data.size()},
                        {"node_client", node.Json()},
                        {"api_one_way", oneway.Json()},
                        {"api_request", request.Json()}};
  std::printf("%s\n", out.dump().c_str());
}

}  // namespace
}  // namespace kgr
