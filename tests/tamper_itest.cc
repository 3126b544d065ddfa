// Every single-bit flip and every truncation of every frame type, and a
// replay of every frame, delivered over a real TLS Mosquitto to a running KS
// and two nodes: each is dropped without a crash and without changing any
// state, and the system keeps working afterwards.
#include <gtest/gtest.h>

#include <map>

#include "harness/ked_itest.h"

namespace kgr {
namespace {

using harness::Frame;
using harness::TapTransport;
using Party = harness::ItestNode;

class TamperITest : public harness::KedITest {
 protected:
  void TearDown() override {
    if (attacker_) (void)attacker_->Disconnect();
    KedITest::TearDown();
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
               std::to_string(k.key_version) + ":" +
               ToHex(k.nnsk.RawEncKeyBytes().span()) + ":" +
               std::to_string(k.ctime_unix_ms);
        });
      }
      return s;
    });
  }

  void Publish(const std::string& topic, const Bytes& payload) {
    Status st = attacker_->Republish({topic, payload});
    ASSERT_TRUE(st.ok()) << "attacker could not publish: " << st.ToString();
  }

  std::unique_ptr<TapTransport> attacker_;
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
  std::map<uint8_t, Frame> by_type;
  std::vector<TapTransport*> all = {ks_transport_.get()};
  for (auto& p : parties_) all.push_back(p->transport.get());
  for (TapTransport* t : all) {
    for (auto& f : t->published()) {
      auto h = PeekFrameHeader(f.payload);
      if (h.ok()) by_type.emplace(static_cast<uint8_t>(h->type), f);
    }
  }
  EXPECT_EQ(by_type.size(), 11u) << "every node frame type captured";

  attacker_ = NewTransport("n00000000");
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
