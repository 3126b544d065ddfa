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

#include <cstdio>

#include "harness/ked_itest.h"

namespace kgr {
namespace {

using harness::CountFrames;
using harness::Frame;
using Party = harness::ItestNode;

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

class LateRetransmissionITest : public harness::KedITest {
 protected:
  // a sends `text` to b, b echoes it.
  void ExpectEcho(Party& a, Party& b, const std::string& text) {
    auto r = Send(a, b, text);
    ASSERT_TRUE(r.ok()) << text << ": " << r.status().ToString();
    EXPECT_EQ(*r, text);
  }

  // The key `n` holds for `peer`: version and key bytes.
  std::string KeyOf(Party& n, const Party& peer) {
    return OnLoop([&] {
      auto k = n.ses->Get(peer.n_id);
      if (!k.ok()) return k.status().ToString();
      return "version " + std::to_string(k->key_version) + " enc " +
             ToHex(k->nnsk.RawEncKeyBytes().span()) + " mac " +
             ToHex(k->nnsk.RawMacKeyBytes().span());
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

  void LateCopyGetsNoSecondKey(Party& a, Party& b, Mode mode);
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
  Status published = a.transport->Republish(*late);  // a's own connection
  ASSERT_TRUE(published.ok()) << published.ToString();
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
