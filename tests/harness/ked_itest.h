// A KED in one test process over a real TLS Mosquitto: the real KeyServer
// and NodeClients (fake TPMs, real stores in a temporary directory) on one
// EventLoop, each on its own broker connection, every connection tapped
// (TapTransport). Used by the integration tests that capture frames and
// publish them again (tamper_itest, late_retransmission_itest).
#ifndef KGR_TESTS_HARNESS_KED_ITEST_H_
#define KGR_TESTS_HARNESS_KED_ITEST_H_

#include <gtest/gtest.h>

#include <atomic>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "harness/mosquitto.h"
#include "kgr/event_loop.h"
#include "kgr/key_server.h"
#include "kgr/node_client.h"
#include "kgr/store.h"
#include "testing/fake_tpm.h"

namespace kgr::harness {

struct Frame {
  std::string topic;
  Bytes payload;
};

// Records what a client publishes and receives (what an eavesdropper with
// full access would capture). On request it holds back the retransmission
// of the client's next nnsk_key_req: the first copy waits until the
// retransmission is made, then goes out, and the retransmission is kept
// (late()) for the test to publish later. Thread-safe.
class TapTransport : public Transport {
 public:
  explicit TapTransport(std::unique_ptr<Transport> inner)
      : inner_(std::move(inner)) {}
  void SetHandler(Handler h) override;
  Status Connect() override { return inner_->Connect(); }
  Status Subscribe(const std::string& t) override {
    return inner_->Subscribe(t);
  }
  Status Unsubscribe(const std::string& t) override {
    return inner_->Unsubscribe(t);
  }
  Status Publish(const std::string& t, std::span<const uint8_t> p) override;
  Status Disconnect() override { return inner_->Disconnect(); }

  void HoldNextRetransmission();
  std::optional<Frame> late();
  // Publishes `f` unchanged from this client's own connection (not
  // recorded), retrying while the client's send buffer is full.
  Status Republish(const Frame& f);
  std::vector<Frame> published();
  std::vector<Frame> received();

 private:
  std::unique_ptr<Transport> inner_;
  std::mutex mu_;
  std::vector<Frame> published_, received_;
  bool holding_ = false;
  std::optional<Frame> first_, late_;
};

// Frames of `type` with `request_id` among `frames` from index `from` on.
size_t CountFrames(const std::vector<Frame>& frames, size_t from,
                   FrameType type, uint64_t request_id);

struct ItestNode {
  testing::FakeTpm tpm;
  std::unique_ptr<TapTransport> transport;
  std::unique_ptr<SesKeysStore> ses;
  std::unique_ptr<NodeClient> client;
  uint32_t n_id = 0;
};

class KedITest : public ::testing::Test {
 protected:
  // Starts the broker, the loop and the KS.
  void SetUp() override;
  void TearDown() override;

  // The KS process ends without a last flush of its replay counters and
  // request floors (what a SIGKILL leaves; its stores close as a killed
  // process leaves them on a file system that keeps its data), then starts
  // again from its files and the TPM. Its broker connection is kept.
  void RestartKs();

  std::unique_ptr<TapTransport> NewTransport(const std::string& cn);

  // Runs `f` on the loop and returns its result.
  template <typename F>
  auto OnLoop(F f) -> decltype(f()) {
    std::promise<decltype(f())> p;
    auto fut = p.get_future();
    loop_.Post([&] { p.set_value(f()); });
    return fut.get();
  }

  // Runs an asynchronous client call on the loop and waits for its result
  // (DEADLINE_EXCEEDED after 60 s).
  Status Await(const std::function<void(DoneCallback)>& start);
  // Polls `done` (off the loop) until it holds or `seconds` pass.
  static bool WaitFor(const std::function<bool()>& done, int seconds = 60);

  // Authorizes, initializes, connects and starts a node (not registered).
  ItestNode& AddNode(std::vector<uint32_t> peers);
  // a sends `text` to b; b's data handler echoes it.
  StatusOr<std::string> Send(ItestNode& a, ItestNode& b,
                             const std::string& text);

  std::string dir_;
  std::unique_ptr<Mosquitto> broker_;
  EventLoop loop_;
  std::thread loop_thread_;
  std::atomic<bool> ks_ticks_{true};  // false: the KS's Tick is not called
  testing::FakeTpm ks_tpm_;
  uint64_t ks_counter_floor_ = 0;
  std::unique_ptr<NodeDescStore> nodes_;
  std::unique_ptr<GenKeysStore> gen_keys_;
  std::unique_ptr<TapTransport> ks_transport_;
  std::unique_ptr<KeyServer> ks_;
  std::vector<std::unique_ptr<ItestNode>> parties_;

 private:
  // On the loop: opens the KS's stores and starts it on ks_transport_.
  Status StartKs(OwnData own);
};

}  // namespace kgr::harness

#endif  // KGR_TESTS_HARNESS_KED_ITEST_H_
