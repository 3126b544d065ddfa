// Internal to libkgr/cluster/: the record codec of the etcd tables, over
// the domain key generations a member holds (docs/cluster.md "Membership
// ceremony"): it seals under the newest and, during a rotation, opens
// records of the one before too. Thread-safe: the polling thread rotates
// it while the KS's loop and the gen_keys writer use it.
#ifndef KGR_CLUSTER_DOMAIN_CODEC_H_
#define KGR_CLUSTER_DOMAIN_CODEC_H_

#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "kgr/cluster.h"
#include "kgr/records.h"

namespace kgr {

class DomainCodec {
 public:
  // `keys`: newest first (one, or two during a rotation); prepared.
  explicit DomainCodec(std::vector<DomainKey> keys);

  StatusOr<Bytes> Encode(const NodeDesc& record) const;
  StatusOr<Bytes> Encode(const GenKey& record) const;
  template <typename R>
  StatusOr<R> Decode(std::span<const uint8_t> record) const {
    auto held = Held();
    Status last = DataLossError("no domain key");
    for (const auto& g : *held) {
      auto r = g->codec.Decode<R>(record);
      if (r.ok()) return r;
      last = r.status();
    }
    return last;
  }
  StatusOr<uint64_t> Verify(RecordType type,
                            std::span<const uint8_t> record) const;
  // HMAC-SHA256 under the newest generation's MAC key (FAILED_PRECONDITION
  // when writes are stopped), and its check under any generation held.
  StatusOr<Tag> Mac(
      std::initializer_list<std::span<const uint8_t>> parts) const;
  Status VerifyMac(std::initializer_list<std::span<const uint8_t>> parts,
                   std::span<const uint8_t> tag) const;

  // The generation records are sealed under (0: writes stopped).
  uint32_t generation() const;
  // The generations held, newest first.
  std::vector<uint32_t> generations() const;
  // Replaces the keys held (newest first, prepared).
  void Set(std::vector<DomainKey> keys);
  // Stops every write (FAILED_PRECONDITION `why`) until the next Set:
  // this member was removed, or cannot get the cluster's new key.
  void StopWrites(std::string why);

 private:
  struct Generation {
    explicit Generation(DomainKey k)
        : key(std::move(k)), codec(key.keys, key.domain_id) {}
    DomainKey key;
    RecordCodec codec;
  };
  using Ring = std::vector<std::shared_ptr<const Generation>>;
  std::shared_ptr<const Ring> Held() const;
  template <typename R>
  StatusOr<Bytes> EncodeNewest(const R& record) const;

  mutable std::mutex mu_;
  std::shared_ptr<const Ring> ring_;
  std::string stopped_;  // non-empty: why writes are refused
};

}  // namespace kgr

#endif  // KGR_CLUSTER_DOMAIN_CODEC_H_
