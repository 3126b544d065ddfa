// Issue 19, failure 3, over a real TLS Mosquitto: a retransmitted
// nnsk_key_req (same request id) that reaches the KS after the procedure
// completed never gets a second key. Node a's transport holds back a real
// retransmission of its request (the first copy goes through and completes
// the procedure); the held copy is then published, byte for byte, from a's
// own broker connection: with the KS as it runs, after a KS restart once it
// persisted its counters and request floor, and after a KS killed before it
// persisted them (the copy then passes the replay window and only the
// request-id rules stand between it and a second key).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <future>
#include <mutex>
#include <thread>

#include "harness/mosquitto.h"
#include "harness/net.h"
#include "kgr/event_loop.h"
#include "kgr/key_server.h"
#include "kgr/mqtt.h"
#include "kgr/node_client.h"
#include "kgr/store.h"
#include "testing/fake_tpm.h"

namespace kgr {
namespace {

using SteadyClock = std::chrono::steady_clock;

struct Frame {
  std::string topic;
  Bytes payload;
};

// Records what a client publishes and receives; on request holds back the
// retransmission of its next nnsk_key_req: the first copy waits until the
// retransmission is made, then goes out, and the retransmission is kept
// (late()) for the test to publish later from the same connection.
class TapTransport : public Transport {
 public:
  explicit TapTransport(std::unique_ptr<Transport> inner)
      : inner_(std::move(inner)) {}
  void SetHandler(Handler h) override {
    inner_->SetHandler([this, h = std::move(h)](const std::string& t, Bytes p) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        received_.push_back({t, p});
      }
      h(t, std::move(p));
    });
  }
  Status Connect() override { return inner_->Connect(); }
  Status Subscribe(const std::string& t) override {
    return inner_->Subscribe(t);
  }
  Status Unsubscribe(const std::string& t) override {
    return inner_->Unsubscribe(t);
  }
  Status Publish(const std::string& t, std::span<const uint8_t> p) override {
    Frame f{t, Bytes(p.begin(), p.end())};
    auto h = PeekFrameHeader(f.payload);
    bool key_req = h.ok() && h->type == FrameType::kNnskKeyReq;
    std::optional<Frame> release;
    {
      std::lock_guard<std::mutex> lock(mu_);
      published_.push_back(f);
      if (holding_ && key_req) {
        if (!first_) {
          first_ = std::move(f);
          return OkStatus();  // waits for the retransmission
        }
        late_ = std::move(f);
        holding_ = false;
        release = std::move(first_);
        first_.reset();
      }
    }
    if (release) return inner_->Publish(release->topic, release->payload);
    return inner_->Publish(t, p);
  }
  Status Disconnect() override { return inner_->Disconnect(); }

  void HoldNextRetransmission() {
    std::lock_guard<std::mutex> lock(mu_);
    holding_ = true;
    first_.reset();
    late_.reset();
  }
  std::optional<Frame> late() {
    std::lock_guard<std::mutex> lock(mu_);
    return late_;
  }
  // From this client's own connection, unchanged.
  Status Republish(const Frame& f) {
    return inner_->Publish(f.topic, f.payload);
  }
  std::vector<Frame> published() {
    std::lock_guard<std::mutex> lock(mu_);
    return published_;
  }
  std::vector<Frame> received() {
    std::lock_guard<std::mutex> lock(mu_);
    return received_;
  }

 private:
  std::unique_ptr<Transport> inner_;
  std::mutex mu_;
  std::vector<Frame> published_, received_;
  bool holding_ = false;
  std::optional<Frame> first_, late_;
};

// Frames of `type` with `request_id` among `frames` from index `from` on.
size_t CountFrames(const std::vector<Frame>& frames, size_t from,
                   FrameType type, uint64_t request_id) {
  size_t n = 0;
  for (size_t i = from; i < frames.size(); ++i) {
    auto h = PeekFrameHeader(frames[i].payload);
    if (h.ok() && h->type == type && h->request_id == request_id) ++n;
  }
  return n;
}

struct Party {
  testing::FakeTpm tpm;
  std::unique_ptr<TapTransport> transport;
  std::unique_ptr<SesKeysStore> ses;
  std::unique_ptr<NodeClient> client;
  uint32_t n_id = 0;
};

enum class Mode { kAsItRuns, kRestartAfterFlush, kKilledBeforeFlush };

const char* ModeName(Mode m) {
  switch (m) {
    case Mode::kAsItRuns:
      return "KS as it runs";
    case Mode::kRestartAfterFlush:
      return "KS restarted after it persisted counters and floor";
    default:
      return "KS killed before it persisted counters and floor";
  }
}

class LateRetransmissionITest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = harness::MakeTempDir("lateretx");
    ASSERT_FALSE(dir_.empty());
    broker_ = std::make_unique<harness::Mosquitto>(dir_);
    Status started = broker_->Start();
    ASSERT_TRUE(started.ok()) << started.ToString();
    loop_thread_ = std::thread([this] {
      loop_.Run([this] {
        if (ks_ && ks_ticks_) ks_->Tick();
        for (auto& p : parties_) p->client->Tick();
      });
    });
    auto own = InitKeyServer(ks_tpm_, "127.0.0.1:1", "kgr");
    ASSERT_TRUE(own.ok());
    ks_transport_ = Transport("ks");
    ks_transport_->SetHandler([this](const std::string& t, Bytes p) {
      loop_.Post([this, t, p = std::move(p)] {
        if (ks_) ks_->HandleMessage(t, p);
      });
    });
    ASSERT_TRUE(ks_transport_->Connect().ok());
    ASSERT_TRUE(OnLoop([&] { return StartKs(std::move(*own)); }).ok());
  }

  void TearDown() override {
    loop_.Stop();
    if (loop_thread_.joinable()) loop_thread_.join();
    for (auto& p : parties_) (void)p->transport->Disconnect();
    if (ks_transport_) (void)ks_transport_->Disconnect();
    ks_.reset();
    broker_.reset();
    harness::RemoveTree(dir_);
  }

  // On the loop. Opens the KS's stores and starts it on its connection.
  Status StartKs(OwnData own) {
    uint32_t ks_id = own.identity.n_id;
    auto nodes = NodeDescStore::Open(*DefaultFileSystem(),
                                     dir_ + "/ks/node_desc", own.nk, ks_id);
    if (!nodes.ok()) return nodes.status();
    auto gen = GenKeysStore::Open(*DefaultFileSystem(), dir_ + "/ks/gen_keys",
                                  own.nk, ks_id);
    if (!gen.ok()) return gen.status();
    nodes_ = *std::move(nodes);
    gen_keys_ = *std::move(gen);
    KeyServerOptions o;
    o.counter_floor = ks_counter_floor_;
    ks_ = std::make_unique<KeyServer>(std::move(own), *ks_tpm_.KedkPublic(),
                                      *ks_transport_, *nodes_, *gen_keys_,
                                      nullptr, *SystemClock(), o);
    return ks_->Start();
  }

  // The KS process ends without a last flush of its replay counters and
  // request floors (what a SIGKILL leaves), then starts again from its
  // files and the TPM. Its broker connection is kept.
  void RestartKs() {
    Status st = OnLoop([&] {
      ks_counter_floor_ = ks_->last_counter() + kCounterRestartMargin;
      ks_.reset();
      gen_keys_.reset();
      nodes_.reset();
      auto own = LoadOwnData(ks_tpm_);
      if (!own.ok()) return own.status();
      return StartKs(std::move(*own));
    });
    ASSERT_TRUE(st.ok()) << st.ToString();
  }

  std::unique_ptr<TapTransport> Transport(const std::string& cn) {
    auto o = broker_->ClientOptions(cn);
    EXPECT_TRUE(o.ok()) << o.status().ToString();
    auto t = NewMqttTransport(*o);
    EXPECT_TRUE(t.ok()) << t.status().ToString();
    return std::make_unique<TapTransport>(std::move(*t));
  }

  template <typename F>
  auto OnLoop(F f) -> decltype(f()) {
    std::promise<decltype(f())> p;
    auto fut = p.get_future();
    loop_.Post([&] { p.set_value(f()); });
    return fut.get();
  }

  Status Await(const std::function<void(DoneCallback)>& start) {
    auto p = std::make_shared<std::promise<Status>>();
    auto fut = p->get_future();
    loop_.Post([&, p] { start([p](Status s) { p->set_value(s); }); });
    if (fut.wait_for(std::chrono::seconds(60)) != std::future_status::ready) {
      return DeadlineExceededError("test wait");
    }
    return fut.get();
  }

  // Polls `done` (off the loop) until it holds or `seconds` pass.
  static bool WaitFor(const std::function<bool()>& done, int seconds = 60) {
    auto deadline = SteadyClock::now() + std::chrono::seconds(seconds);
    while (SteadyClock::now() < deadline) {
      if (done()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return done();
  }

  Party& AddNode(std::vector<uint32_t> peers) {
    AcAuthorizeAns ans;
    Status st = OnLoop([&] { return ks_->AuthorizeNode({peers}, &ans); });
    EXPECT_TRUE(st.ok());
    auto p = std::make_unique<Party>();
    p->n_id = ans.n_id;
    Credentials c;
    c.n_id = ans.n_id;
    c.ntag = std::move(ans.ntag);
    c.broker_address = "127.0.0.1:1";
    c.ks_n_id = ans.ks_n_id;
    auto own = InitNode(p->tpm, c);
    EXPECT_TRUE(own.ok());
    p->ses = *SesKeysStore::Open(*DefaultFileSystem(),
                                 dir_ + "/" + NodeIdentity(ans.n_id) + "/ses",
                                 own->nk, ans.n_id);
    p->transport = Transport(NodeIdentity(ans.n_id));
    p->client = std::make_unique<NodeClient>(
        std::move(*own), p->tpm, *p->transport, *p->ses, *SystemClock());
    Party* raw = p.get();
    p->transport->SetHandler([this, raw](const std::string& t, Bytes m) {
      loop_.Post(
          [raw, t, m = std::move(m)] { raw->client->HandleMessage(t, m); });
    });
    EXPECT_TRUE(p->transport->Connect().ok());
    EXPECT_TRUE(OnLoop([&] {
                  raw->client->SetDataHandler(
                      [](uint32_t, const SecretBytes& d) { return d.Clone(); });
                  return raw->client->Start();
                }).ok());
    parties_.push_back(std::move(p));
    return *raw;
  }

  // a sends `text` to b, b echoes it.
  void ExpectEcho(Party& a, Party& b, const std::string& text) {
    auto p = std::make_shared<std::promise<StatusOr<SecretBytes>>>();
    auto fut = p->get_future();
    loop_.Post([&, p] {
      a.client->Send(
          b.n_id, SecretBytes(AsBytes(text)),
          [p](StatusOr<SecretBytes> r) { p->set_value(std::move(r)); });
    });
    auto r = fut.get();
    ASSERT_TRUE(r.ok()) << text << ": " << r.status().ToString();
    EXPECT_EQ(std::string(r->span().begin(), r->span().end()), text);
  }

  // The key `n` holds for `peer`: version and key bytes.
  std::string KeyOf(Party& n, const Party& peer) {
    return OnLoop([&] {
      auto k = n.ses->Get(peer.n_id);
      if (!k.ok()) return k.status().ToString();
      return "version " + std::to_string(k->key_version) + " enc " +
             ToHex(k->nnsk.enc.span()) + " mac " + ToHex(k->nnsk.mac.span());
    });
  }

  // What the KS has done with frames so far (each frame ends in one).
  uint64_t KsOutcomes() {
    return OnLoop([&] {
      const KeyServerStats& s = ks_->stats();
      return s.dropped_frames + s.refused_requests + s.keys_issued;
    });
  }

  // The highest counter of a's frames to the KS that node_desc holds.
  uint64_t PersistedCounter(const Party& a) {
    return OnLoop([&]() -> uint64_t {
      auto d = nodes_->Get(a.n_id);
      return d.ok() ? d->last_counter : 0;
    });
  }

  // A renewal a -> b of which one retransmission is held back; returns it.
  std::optional<Frame> RenewHoldingBackARetransmission(Party& a, Party& b) {
    a.transport->HoldNextRetransmission();
    Status st =
        Await([&](DoneCallback d) { a.client->RequestKey(b.n_id, true, d); });
    EXPECT_TRUE(st.ok()) << st.ToString();
    return a.transport->late();
  }

  void PublishAsA(Party& a, const Frame& f) {
    for (int i = 0; i < 2000; ++i) {
      Status st = a.transport->Republish(f);
      if (st.ok()) return;
      ASSERT_EQ(st.code(), StatusCode::kResourceExhausted) << st.ToString();
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    FAIL() << "a could not publish";
  }

  void LateCopyGetsNoSecondKey(Party& a, Party& b, Mode mode);

  std::string dir_;
  std::unique_ptr<harness::Mosquitto> broker_;
  EventLoop loop_;
  std::thread loop_thread_;
  std::atomic<bool> ks_ticks_{true};
  testing::FakeTpm ks_tpm_;
  uint64_t ks_counter_floor_ = 0;
  std::unique_ptr<NodeDescStore> nodes_;
  std::unique_ptr<GenKeysStore> gen_keys_;
  std::unique_ptr<TapTransport> ks_transport_;
  std::unique_ptr<KeyServer> ks_;
  std::vector<std::unique_ptr<Party>> parties_;
};

void LateRetransmissionITest::LateCopyGetsNoSecondKey(Party& a, Party& b,
                                                      Mode mode) {
  // Killed before the flush: the KS persists nothing from the renewal on.
  ks_ticks_ = mode != Mode::kKilledBeforeFlush;
  std::optional<Frame> late = RenewHoldingBackARetransmission(a, b);
  ASSERT_TRUE(late.has_value()) << "no retransmission was held back";
  FrameHeader lh = *PeekFrameHeader(late->payload);
  ASSERT_EQ(late->topic, OnLoop([&] { return ks_->topic1(); }));
  // Data both ways: both ends use the renewed key.
  ExpectEcho(a, b, "after renewal");
  ExpectEcho(b, a, "and back");
  std::string key_a = KeyOf(a, b), key_b = KeyOf(b, a);
  ASSERT_EQ(key_a, key_b);

  if (mode == Mode::kRestartAfterFlush) {
    // Wait until the KS persisted a's counters (its request floor goes in
    // the same write: FlushCounters), then restart.
    uint64_t highest = 0;
    for (const Frame& f : a.transport->published()) {
      auto h = PeekFrameHeader(f.payload);
      if (h.ok() && f.topic == late->topic)
        highest = std::max(highest, h->counter);
    }
    ASSERT_TRUE(WaitFor([&] { return PersistedCounter(a) >= highest; }));
    RestartKs();
  }
  if (mode == Mode::kKilledBeforeFlush) {
    RestartKs();
    ks_ticks_ = true;
    ASSERT_LT(PersistedCounter(a), lh.counter)
        << "precondition: the late copy must pass the restarted KS's window";
  }

  size_t ks_mark = ks_transport_->published().size();
  size_t b_mark = b.transport->received().size();
  uint64_t outcomes = KsOutcomes();
  uint64_t issued = OnLoop([&] { return ks_->stats().keys_issued; });
  PublishAsA(a, *late);
  ASSERT_TRUE(WaitFor([&] { return KsOutcomes() > outcomes; }))
      << "the KS never handled the late copy";
  auto ks_sent = ks_transport_->published();
  size_t notified =
      CountFrames(ks_sent, ks_mark, FrameType::kNnskNotReq, lh.request_id);
  if (notified > 0) {  // let b take it, to show what it does to the pair
    WaitFor([&] {
      return CountFrames(b.transport->received(), b_mark,
                         FrameType::kNnskNotReq, lh.request_id) > 0;
    });
    OnLoop([] { return 0; });
  }
  char id[17];
  std::snprintf(id, sizeof id, "%016llx",
                static_cast<unsigned long long>(lh.request_id));
  EXPECT_EQ(OnLoop([&] { return ks_->stats().keys_issued; }), issued)
      << "the late copy of request " << id << " was given a second key";
  EXPECT_EQ(notified, 0u) << "the KS sent b a second key for request " << id;
  EXPECT_EQ(
      CountFrames(ks_sent, ks_mark, FrameType::kNnskKeyAns, lh.request_id) +
          CountFrames(ks_sent, ks_mark, FrameType::kNnskConfReq, lh.request_id),
      0u)
      << "the KS answered the late copy of request " << id;
  std::string record = OnLoop([&]() -> std::string {
    auto g = gen_keys_->Get(lh.request_id);
    if (!g.ok() || g->tombstone()) return "";
    return "live record at step " + std::to_string(g->step);
  });
  EXPECT_EQ(record, "") << "gen_keys holds a key for request " << id;
  EXPECT_EQ(KeyOf(a, b), key_a) << "a's key for b changed";
  EXPECT_EQ(KeyOf(b, a), key_b) << "b's key for a changed";
  ExpectEcho(a, b, "still the same key");
  ExpectEcho(b, a, "both ways");
  EXPECT_EQ(KeyOf(a, b), key_a) << "a's key for b changed after data";
  EXPECT_EQ(KeyOf(b, a), key_b) << "b's key for a changed after data";
}

TEST_F(LateRetransmissionITest, LateKeyRequestCopyNeverGetsASecondKey) {
  Party& a = AddNode({});
  Party& b = AddNode({a.n_id});
  for (Party* p : {&a, &b}) {
    ASSERT_TRUE(Await([&](DoneCallback d) { p->client->Register(d); }).ok());
  }
  ASSERT_TRUE(OnLoop([&] { return a.client->LoadPeers({b.n_id}); }).ok());
  ASSERT_TRUE(OnLoop([&] { return b.client->LoadPeers({a.n_id}); }).ok());
  ASSERT_TRUE(Await([&](DoneCallback d) {
                a.client->RequestKey(b.n_id, false, d);
              }).ok());
  ExpectEcho(a, b, "hello");
  for (Mode mode :
       {Mode::kAsItRuns, Mode::kRestartAfterFlush, Mode::kKilledBeforeFlush}) {
    SCOPED_TRACE(ModeName(mode));
    LateCopyGetsNoSecondKey(a, b, mode);
    if (HasFatalFailure()) return;
  }
}

}  // namespace
}  // namespace kgr
