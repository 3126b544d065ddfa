// DomainCodec: the etcd tables' codec over the domain key generations.
#include "cluster/domain_codec.h"

namespace kgr {

DomainCodec::DomainCodec(std::vector<DomainKey> keys) { Set(std::move(keys)); }

void DomainCodec::Set(std::vector<DomainKey> keys) {
  auto ring = std::make_shared<Ring>();
  for (DomainKey& k : keys) {
    ring->push_back(std::make_shared<const Generation>(std::move(k)));
  }
  std::lock_guard<std::mutex> lock(mu_);
  ring_ = std::move(ring);
  stopped_.clear();
}

void DomainCodec::StopWrites(std::string why) {
  std::lock_guard<std::mutex> lock(mu_);
  stopped_ = why.empty() ? "writes stopped" : std::move(why);
}

std::shared_ptr<const DomainCodec::Ring> DomainCodec::Held() const {
  std::lock_guard<std::mutex> lock(mu_);
  return ring_;
}

template <typename R>
StatusOr<Bytes> DomainCodec::EncodeNewest(const R& record) const {
  std::shared_ptr<const Ring> held;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!stopped_.empty()) return FailedPreconditionError(stopped_);
    held = ring_;
  }
  if (held->empty()) return FailedPreconditionError("no domain key");
  return held->front()->codec.Encode(record);
}

StatusOr<Bytes> DomainCodec::Encode(const NodeDesc& record) const {
  return EncodeNewest(record);
}

StatusOr<Bytes> DomainCodec::Encode(const GenKey& record) const {
  return EncodeNewest(record);
}

StatusOr<uint64_t> DomainCodec::Verify(RecordType type,
                                       std::span<const uint8_t> record) const {
  auto held = Held();
  Status last = DataLossError("no domain key");
  for (const auto& g : *held) {
    auto r = g->codec.Verify(type, record);
    if (r.ok()) return r;
    last = r.status();
  }
  return last;
}

StatusOr<Tag> DomainCodec::Mac(
    std::initializer_list<std::span<const uint8_t>> parts) const {
  std::shared_ptr<const Ring> held;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!stopped_.empty()) return FailedPreconditionError(stopped_);
    held = ring_;
  }
  if (held->empty()) return FailedPreconditionError("no domain key");
  return HmacSha256(held->front()->key.keys, parts);
}

Status DomainCodec::VerifyMac(
    std::initializer_list<std::span<const uint8_t>> parts,
    std::span<const uint8_t> tag) const {
  for (const auto& g : *Held()) {
    if (VerifyHmacSha256(g->key.keys, parts, tag).ok()) return OkStatus();
  }
  return UnauthenticatedError(kVerificationFailed);
}

uint32_t DomainCodec::generation() const {
  std::lock_guard<std::mutex> lock(mu_);
  if (!stopped_.empty() || ring_->empty()) return 0;
  return ring_->front()->key.generation;
}

std::vector<uint32_t> DomainCodec::generations() const {
  std::vector<uint32_t> out;
  for (const auto& g : *Held()) out.push_back(g->key.generation);
  return out;
}

}  // namespace kgr
