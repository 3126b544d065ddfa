#include "harness/ked_itest.h"

#include <chrono>

#include "harness/net.h"
#include "kgr/counter_file.h"
#include "kgr/mqtt.h"

namespace kgr::harness {

void TapTransport::SetHandler(Handler h) {
  inner_->SetHandler([this, h = std::move(h)](const std::string& t, Bytes p) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      received_.push_back({t, p});
    }
    h(t, std::move(p));
  });
}

Status TapTransport::Publish(const std::string& t, std::span<const uint8_t> p) {
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

void TapTransport::HoldNextRetransmission() {
  std::lock_guard<std::mutex> lock(mu_);
  holding_ = true;
  first_.reset();
  late_.reset();
}

std::optional<Frame> TapTransport::late() {
  std::lock_guard<std::mutex> lock(mu_);
  return late_;
}

Status TapTransport::Republish(const Frame& f) {
  Status st;
  for (int i = 0; i < 2000; ++i) {
    st = inner_->Publish(f.topic, f.payload);
    if (st.code() != StatusCode::kResourceExhausted) return st;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return st;
}

std::vector<Frame> TapTransport::published() {
  std::lock_guard<std::mutex> lock(mu_);
  return published_;
}

std::vector<Frame> TapTransport::received() {
  std::lock_guard<std::mutex> lock(mu_);
  return received_;
}

size_t CountFrames(const std::vector<Frame>& frames, size_t from,
                   FrameType type, uint64_t request_id) {
  size_t n = 0;
  for (size_t i = from; i < frames.size(); ++i) {
    auto h = PeekFrameHeader(frames[i].payload);
    if (h.ok() && h->type == type && h->request_id == request_id) ++n;
  }
  return n;
}

void KedITest::SetUp() {
  dir_ = MakeTempDir("ked");
  ASSERT_FALSE(dir_.empty());
  broker_ = std::make_unique<Mosquitto>(dir_);  // chmods dir_
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
  ks_transport_ = NewTransport("ks");
  ks_transport_->SetHandler([this](const std::string& t, Bytes p) {
    loop_.Post([this, t, p = std::move(p)] {
      if (ks_) ks_->HandleMessage(t, p);
    });
  });
  ASSERT_TRUE(ks_transport_->Connect().ok());
  Status st = OnLoop([&] { return StartKs(std::move(*own)); });
  ASSERT_TRUE(st.ok()) << st.ToString();
}

void KedITest::TearDown() {
  loop_.Stop();
  if (loop_thread_.joinable()) loop_thread_.join();
  for (auto& p : parties_) (void)p->transport->Disconnect();
  if (ks_transport_) (void)ks_transport_->Disconnect();
  ks_.reset();
  broker_.reset();
  RemoveTree(dir_);
}

Status KedITest::StartKs(OwnData own) {
  uint32_t ks_id = own.identity.n_id;
  auto nodes = NodeDescStore::Open(*DefaultFileSystem(), dir_ + "/ks/node_desc",
                                   own.nk, ks_id);
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

void KedITest::RestartKs() {
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

std::unique_ptr<TapTransport> KedITest::NewTransport(const std::string& cn) {
  auto o = broker_->ClientOptions(cn);
  EXPECT_TRUE(o.ok()) << o.status().ToString();
  auto t = NewMqttTransport(*o);
  EXPECT_TRUE(t.ok()) << t.status().ToString();
  return std::make_unique<TapTransport>(std::move(*t));
}

Status KedITest::Await(const std::function<void(DoneCallback)>& start) {
  auto p = std::make_shared<std::promise<Status>>();
  auto fut = p->get_future();
  loop_.Post([&, p] { start([p](Status s) { p->set_value(s); }); });
  if (fut.wait_for(std::chrono::seconds(60)) != std::future_status::ready) {
    return DeadlineExceededError("test wait");
  }
  return fut.get();
}

bool KedITest::WaitFor(const std::function<bool()>& done, int seconds) {
  auto deadline =
      std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  while (std::chrono::steady_clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return done();
}

ItestNode& KedITest::AddNode(std::vector<uint32_t> peers) {
  AcAuthorizeAns ans;
  Status st = OnLoop([&] { return ks_->AuthorizeNode({peers}, &ans); });
  EXPECT_TRUE(st.ok());
  auto p = std::make_unique<ItestNode>();
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
  p->transport = NewTransport(NodeIdentity(ans.n_id));
  p->client = std::make_unique<NodeClient>(
      std::move(*own), p->tpm, *p->transport, *p->ses, *SystemClock());
  ItestNode* raw = p.get();
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

StatusOr<std::string> KedITest::Send(ItestNode& a, ItestNode& b,
                                     const std::string& text) {
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

}  // namespace kgr::harness
