// Every single-bit flip and every truncation of every frame type, and a
// replay of every frame, delivered over a real TLS Mosquitto to a running KS
// and two nodes: each is dropped without a crash and without changing any
// state, and the system keeps working afterwards.
#include <gtest/gtest.h>

#include <future>
#include <map>
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

// Records what goes through a transport (the frames an eavesdropper with
// full access would capture).
class RecordingTransport : public Transport {
 public:
  struct Frame {
    std::string topic;
    Bytes payload;
  };
  explicit RecordingTransport(std::unique_ptr<Transport> inner)
      : inner_(std::move(inner)) {}
  void SetHandler(Handler h) override { inner_->SetHandler(std::move(h)); }
  Status Connect() override { return inner_->Connect(); }
  Status Subscribe(const std::string& t) override {
    return inner_->Subscribe(t);
  }
  Status Unsubscribe(const std::string& t) override {
    return inner_->Unsubscribe(t);
  }
  Status Publish(const std::string& t, std::span<const uint8_t> p) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      frames_.push_back({t, Bytes(p.begin(), p.end())});
    }
    return inner_->Publish(t, p);
  }
  Status Disconnect() override { return inner_->Disconnect(); }
  std::vector<Frame> frames() {
    std::lock_guard<std::mutex> lock(mu_);
    return frames_;
  }

 private:
  std::unique_ptr<Transport> inner_;
  std::mutex mu_;
  std::vector<Frame> frames_;
};

struct Party {
  testing::FakeTpm tpm;
  std::unique_ptr<RecordingTransport> transport;
  std::unique_ptr<SesKeysStore> ses;
  std::unique_ptr<NodeClient> client;
  uint32_t n_id = 0;
};

class TamperITest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = harness::MakeTempDir("tamper");
    ASSERT_FALSE(dir_.empty());
    broker_ = std::make_unique<harness::Mosquitto>(dir_);  // chmods dir_
    Status started = broker_->Start();
    ASSERT_TRUE(started.ok()) << started.ToString();
    loop_thread_ = std::thread([this] {
      loop_.Run([this] {
        if (ks_) ks_->Tick();
        for (auto& p : parties_) p->client->Tick();
      });
    });
    auto own = InitKeyServer(ks_tpm_, "127.0.0.1:1", "kgr");
    ASSERT_TRUE(own.ok());
    uint32_t ks_id = own->identity.n_id;
    nodes_ = *NodeDescStore::Open(*DefaultFileSystem(), dir_ + "/ks/node_desc",
                                  own->nk, ks_id);
    gen_keys_ = *GenKeysStore::Open(*DefaultFileSystem(), dir_ + "/ks/gen_keys",
                                    own->nk, ks_id);
    ks_transport_ = Transport("ks");
    ks_ = std::make_unique<KeyServer>(
        std::move(*own), *ks_tpm_.KedkPublic(), *ks_transport_, *nodes_,
        *gen_keys_, nullptr, *SystemClock(), KeyServerOptions{});
    ks_transport_->SetHandler([this](const std::string& t, Bytes p) {
      loop_.Post([this, t, p = std::move(p)] { ks_->HandleMessage(t, p); });
    });
    ASSERT_TRUE(ks_transport_->Connect().ok());
    ASSERT_TRUE(OnLoop([&] { return ks_->Start(); }).ok());
  }

  void TearDown() override {
    loop_.Stop();
    if (loop_thread_.joinable()) loop_thread_.join();
    for (auto& p : parties_) (void)p->transport->Disconnect();
    if (ks_transport_) (void)ks_transport_->Disconnect();
    if (attacker_) (void)attacker_->Disconnect();
    broker_.reset();
    harness::RemoveTree(dir_);
  }

  std::unique_ptr<RecordingTransport> Transport(const std::string& cn) {
    auto o = broker_->ClientOptions(cn);
    EXPECT_TRUE(o.ok()) << o.status().ToString();
    auto t = NewMqttTransport(*o);
    EXPECT_TRUE(t.ok()) << t.status().ToString();
    return std::make_unique<RecordingTransport>(std::move(*t));
  }

  template <typename F>
  auto OnLoop(F f) -> decltype(f()) {
    std::promise<decltype(f())> p;
    auto fut = p.get_future();
    loop_.Post([&] { p.set_value(f()); });
    return fut.get();
  }

  // Runs an asynchronous client call on the loop and waits for its result.
  Status Await(const std::function<void(DoneCallback)>& start) {
    auto p = std::make_shared<std::promise<Status>>();
    auto fut = p->get_future();
    loop_.Post([&, p] { start([p](Status s) { p->set_value(s); }); });
    if (fut.wait_for(std::chrono::seconds(30)) != std::future_status::ready) {
      return DeadlineExceededError("test wait");
    }
    return fut.get();
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

  StatusOr<std::string> Send(Party& a, Party& b, const std::string& text) {
    auto p = std::make_shared<std::promise<StatusOr<SecretBytes>>>();
    auto fut = p->get_future();
    loop_.Post([&, p] {
      a.client->Send(
          b.n_id, SecretBytes(AsBytes(text)),
          [p](StatusOr<SecretBytes> r) { p->set_value(std::move(r)); });
    });
    auto r = fut.get();
    if (!r.ok()) return r.status();
    return std::string(r->span().begin(), r->span().end());
  }

  // Everything the test compares before and after the attack.
  std::string State() {
    return OnLoop([&] {
      std::string s = std::to_string(ks_->stats().registrations) + "/" +
                      std::to_string(ks_->stats().keys_issued) + "/" +
                      std::to_string(ks_->stats().keys_confirmed) + "/" +
                      std::to_string(gen_keys_->size()) + "/" +
                      std::to_string(nodes_->size());
      for (auto& p : parties_) {
        p->ses->ForEach([&](const SesKey& k) {
          s += "|" + std::to_string(k.n_id) + ":" +
               std::to_string(k.key_version) + ":" + ToHex(k.nnsk.enc.span()) +
               ":" + std::to_string(k.ctime_unix_ms);
        });
      }
      return s;
    });
  }

  void Publish(const std::string& topic, const Bytes& payload) {
    for (int i = 0; i < 2000; ++i) {
      Status st = attacker_->Publish(topic, payload);
      if (st.ok()) return;
      ASSERT_EQ(st.code(), StatusCode::kResourceExhausted) << st.ToString();
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    FAIL() << "attacker could not publish";
  }

  std::string dir_;
  std::unique_ptr<harness::Mosquitto> broker_;
  EventLoop loop_;
  std::thread loop_thread_;
  testing::FakeTpm ks_tpm_;
  std::unique_ptr<NodeDescStore> nodes_;
  std::unique_ptr<GenKeysStore> gen_keys_;
  std::unique_ptr<RecordingTransport> ks_transport_;
  std::unique_ptr<KeyServer> ks_;
  std::vector<std::unique_ptr<Party>> parties_;
  std::unique_ptr<RecordingTransport> attacker_;
};

TEST_F(TamperITest,
       EveryBitFlipTruncationAndReplayIsDroppedWithoutStateChange) {
  Party& a = AddNode({});
  Party& b = AddNode({a.n_id});
  Party& c = AddNode({});
  for (Party* p : {&a, &b, &c}) {
    ASSERT_TRUE(Await([&](DoneCallback d) { p->client->Register(d); }).ok());
  }
  ASSERT_TRUE(OnLoop([&] { return a.client->LoadPeers({b.n_id}); }).ok());
  ASSERT_TRUE(OnLoop([&] { return b.client->LoadPeers({a.n_id}); }).ok());
  ASSERT_TRUE(OnLoop([&] { return c.client->LoadPeers({a.n_id}); }).ok());
  ASSERT_TRUE(Await([&](DoneCallback d) {
                a.client->RequestKey(b.n_id, false, d);
              }).ok());
  EXPECT_EQ(Await([&](DoneCallback d) {
              c.client->RequestKey(a.n_id, false, d);
            }).code(),
            StatusCode::kPermissionDenied);  // a ks_error frame
  ASSERT_TRUE(Send(a, b, "hello").ok());

  // One captured frame of every type.
  std::map<uint8_t, RecordingTransport::Frame> by_type;
  std::vector<RecordingTransport*> all = {ks_transport_.get()};
  for (auto& p : parties_) all.push_back(p->transport.get());
  for (RecordingTransport* t : all) {
    for (auto& f : t->frames()) {
      auto h = PeekFrameHeader(f.payload);
      if (h.ok()) by_type.emplace(static_cast<uint8_t>(h->type), f);
    }
  }
  EXPECT_EQ(by_type.size(), 11u) << "every node frame type captured";

  attacker_ = Transport("n00000000");
  ASSERT_TRUE(attacker_->Connect().ok());
  std::string before = State();
  size_t sent = 0;
  for (const auto& [type, f] : by_type) {
    Publish(f.topic, f.payload);  // replay
    ++sent;
    for (size_t bit = 0; bit < f.payload.size() * 8; ++bit) {
      Bytes bad = f.payload;
      bad[bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
      Publish(f.topic, bad);
      ++sent;
    }
    for (size_t len = 0; len < f.payload.size(); ++len) {
      Publish(f.topic, Bytes(f.payload.begin(), f.payload.begin() + len));
      ++sent;
    }
  }
  // Let everything arrive and be handled, then compare.
  std::this_thread::sleep_for(std::chrono::seconds(2));
  OnLoop([] { return 0; });
  EXPECT_EQ(State(), before) << "state changed after " << sent << " frames";
  std::printf(
      "tamper: %zu tampered, truncated or replayed frames of %zu types\n", sent,
      by_type.size());
  // The system still works: data, and a renewal (once the KS's per-node
  // rate limit, drained by frames carrying a's id, has refilled).
  auto r = Send(a, b, "still here");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(*r, "still here");
  EXPECT_TRUE(Await([&](DoneCallback d) {
                a.client->RequestKey(b.n_id, true, d);
              }).ok());
}

}  // namespace
}  // namespace kgr
