#include "bench/tap_transport.h"

namespace kgr::bench {

TapTransport::TapTransport(std::unique_ptr<Transport> inner)
    : inner_(std::move(inner)) {}

Status TapTransport::Connect() {
  inner_->SetHandler([this](const std::string& topic, Bytes payload) {
    if (bare_mode_.load(std::memory_order_relaxed)) {
      if (bare_) bare_(topic, std::move(payload));
    } else if (handler_) {
      handler_(topic, std::move(payload));
    }
  });
  return inner_->Connect();
}

Status TapTransport::Subscribe(const std::string& topic) {
  subscribes_.fetch_add(1, std::memory_order_relaxed);
  return inner_->Subscribe(topic);
}

Status TapTransport::Unsubscribe(const std::string& topic) {
  return inner_->Unsubscribe(topic);
}

Status TapTransport::Publish(const std::string& topic,
                             std::span<const uint8_t> payload) {
  if (payload.size() >= 2 && !bare_mode_.load(std::memory_order_relaxed)) {
    sizes_[payload[1]].store(static_cast<uint32_t>(payload.size()),
                             std::memory_order_relaxed);
    counts_[payload[1]].fetch_add(1, std::memory_order_relaxed);
  }
  return inner_->Publish(topic, payload);
}

Status TapTransport::Disconnect() { return inner_->Disconnect(); }

}  // namespace kgr::bench
