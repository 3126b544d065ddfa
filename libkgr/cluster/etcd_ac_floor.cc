// EtcdAcFloor: the AC channel's replay floor on etcd (kgr/ks_state.h
// AcFloor), shared by the instances:
//   <prefix>/ac_floor := counter:u64 (big endian)
//                        HMAC(domain MAC key, "KGR-AC-FLOOR1" || prefix ||
//                        counter)
// The counter is no secret; the tag keeps an etcd writer from lowering it
// (a rollback to an older value it once held is the records' limit too,
// docs/cluster.md).
#include <string_view>

#include "cluster/etcd_tables.h"

namespace kgr {
namespace {

constexpr int kMaxRaiseAttempts = 16;
constexpr std::string_view kLabel = "KGR-AC-FLOOR1";

std::span<const uint8_t> AsSpan(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

}  // namespace

std::string AcFloorKey(const std::string& prefix) {
  return prefix + "/ac_floor";
}

StatusOr<Bytes> EtcdAcFloor::Seal(uint64_t counter) const {
  Bytes out;
  for (int shift = 56; shift >= 0; shift -= 8) {
    out.push_back(static_cast<uint8_t>(counter >> shift));
  }
  KGR_ASSIGN_OR_RETURN(auto tag,
                       codec_.Mac({AsSpan(kLabel), AsSpan(prefix_), out}));
  out.insert(out.end(), tag.begin(), tag.end());
  return out;
}

StatusOr<uint64_t> EtcdAcFloor::Open(const Bytes& value) const {
  if (value.size() != 8 + 32) {
    return DataLossError("etcd " + AcFloorKey(prefix_) + ": bad size");
  }
  std::span<const uint8_t> counter(value.data(), 8);
  std::span<const uint8_t> tag(value.data() + 8, 32);
  if (!codec_.VerifyMac({AsSpan(kLabel), AsSpan(prefix_), counter}, tag).ok()) {
    return DataLossError("etcd " + AcFloorKey(prefix_) +
                         ": verification failed");
  }
  uint64_t v = 0;
  for (uint8_t b : counter) v = v << 8 | b;
  return v;
}

StatusOr<std::pair<uint64_t, int64_t>> EtcdAcFloor::Read() {
  KGR_ASSIGN_OR_RETURN(EtcdRange r, client_.Range(AcFloorKey(prefix_)));
  if (r.kvs.empty()) return std::make_pair(uint64_t{0}, int64_t{0});
  KGR_ASSIGN_OR_RETURN(uint64_t v, Open(r.kvs[0].value));
  return std::make_pair(v, r.kvs[0].mod_revision);
}

StatusOr<uint64_t> EtcdAcFloor::Load() {
  KGR_ASSIGN_OR_RETURN(auto stored, Read());
  return stored.first;
}

Status EtcdAcFloor::Raise(uint64_t counter) {
  const std::string key = AcFloorKey(prefix_);
  KGR_ASSIGN_OR_RETURN(Bytes sealed, Seal(counter));
  for (int attempt = 0; attempt < kMaxRaiseAttempts; ++attempt) {
    KGR_ASSIGN_OR_RETURN(auto stored, Read());
    if (stored.first >= counter) {
      return AlreadyExistsError("AC counter at or below the shared floor");
    }
    // MOD == 0 holds for an absent key.
    KGR_ASSIGN_OR_RETURN(
        EtcdTxnResult r,
        client_.Txn({{key, EtcdCompare::Target::kMod,
                      EtcdCompare::Result::kEqual, stored.second}},
                    {EtcdOp::Put(key, sealed)}, {}));
    if (r.succeeded) return OkStatus();
  }
  return AbortedError("AC floor: gave up after " +
                      std::to_string(kMaxRaiseAttempts) +
                      " conflicting writes");
}

StatusOr<size_t> EtcdAcFloor::Reseal() {
  KGR_ASSIGN_OR_RETURN(EtcdRange r, client_.Range(AcFloorKey(prefix_)));
  if (r.kvs.empty()) return size_t{0};
  KGR_ASSIGN_OR_RETURN(uint64_t v, Open(r.kvs[0].value));
  KGR_ASSIGN_OR_RETURN(Bytes sealed, Seal(v));
  if (sealed == r.kvs[0].value) return size_t{0};  // newest already
  KGR_ASSIGN_OR_RETURN(
      EtcdTxnResult t,
      client_.Txn({{AcFloorKey(prefix_), EtcdCompare::Target::kMod,
                    EtcdCompare::Result::kEqual, r.kvs[0].mod_revision}},
                  {EtcdOp::Put(AcFloorKey(prefix_), sealed)}, {}));
  return size_t{t.succeeded ? 1u : 0u};  // else raised meanwhile: newest
}

}  // namespace kgr
