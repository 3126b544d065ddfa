// TapTransport: a Transport decorator for kgr-bench. It forwards everything
// to the wrapped transport and
//  * records the size of the last frame published of each frame type (the
//    byte at offset 1 of a kgr frame), so that the bare baseline can send
//    messages of exactly the sizes the real run produced;
//  * routes received messages either to the handler set with SetHandler
//    (the kgr procedures) or, while bare mode is on, to the bare handler:
//    both baselines run over the same MQTT connections and topics.
//
// Thread-safe as the wrapped transport is; handlers run on its thread.
#ifndef KGR_TESTS_BENCH_TAP_TRANSPORT_H_
#define KGR_TESTS_BENCH_TAP_TRANSPORT_H_

#include <array>
#include <atomic>
#include <memory>

#include "kgr/transport.h"

namespace kgr::bench {

class TapTransport : public Transport {
 public:
  explicit TapTransport(std::unique_ptr<Transport> inner);

  // Both handlers are set before Connect().
  void SetHandler(Handler handler) override { handler_ = std::move(handler); }
  void SetBareHandler(Handler handler) { bare_ = std::move(handler); }
  void set_bare_mode(bool on) { bare_mode_.store(on); }

  Status Connect() override;
  Status Subscribe(const std::string& topic) override;
  Status Unsubscribe(const std::string& topic) override;
  Status Publish(const std::string& topic,
                 std::span<const uint8_t> payload) override;
  Status Disconnect() override;

  // Size of the last published frame of `type` (0 if none) and how many.
  uint32_t last_size(uint8_t type) const { return sizes_[type].load(); }
  uint64_t published(uint8_t type) const { return counts_[type].load(); }
  uint64_t subscribes() const { return subscribes_.load(); }

 private:
  std::unique_ptr<Transport> inner_;
  Handler handler_;
  Handler bare_;
  std::atomic<bool> bare_mode_{false};
  std::array<std::atomic<uint32_t>, 256> sizes_{};
  std::array<std::atomic<uint64_t>, 256> counts_{};
  std::atomic<uint64_t> subscribes_{0};
};

}  // namespace kgr::bench

#endif  // KGR_TESTS_BENCH_TAP_TRANSPORT_H_
