// Removing a member and rotating the domain key online
// (kgr/cluster_membership.h, docs/cluster.md "Membership ceremony"):
//  1. one txn (compare the epoch and every member record): the removed
//     member's record goes, generation e+1 is wrapped to every remaining
//     member (beside e), epoch = {e+1, resealed e}, <prefix>/domain = the
//     check value of e+1. Running instances see the epoch (their poll),
//     take e+1 for writes and keep e for reads.
//  2. after `settle_ms`, every record still sealed under e is re-sealed
//     under e+1, each by compare-and-swap on its revision (a record changed
//     meanwhile is e+1 already, or is taken by the next pass); twice, the
//     second pass after another `settle_ms` for writes of a lagging
//     instance.
//  3. epoch = {e+1, resealed e+1}, and the wrapped keys of e are dropped:
//     every instance forgets e.
#include <spdlog/spdlog.h>

#include <chrono>
#include <thread>

#include "cluster/domain_codec.h"
#include "cluster/etcd_tables.h"
#include "cluster/membership_store.h"

namespace kgr {
namespace {

constexpr int kRetireAttempts = 8;

StatusOr<DomainKey> Prepared(const DomainKey& k) {
  DomainKey out = k.Clone();
  KGR_RETURN_IF_ERROR(out.keys.Prepare());
  return out;
}

// Re-seals the records of one table still under `from`; the number done.
template <typename R>
StatusOr<size_t> ResealTable(EtcdClient& client, const std::string& base,
                             RecordType type, const DomainCodec& from,
                             const DomainCodec& to) {
  KGR_ASSIGN_OR_RETURN(EtcdRange all, client.Range(base, EtcdPrefixEnd(base)));
  size_t done = 0;
  for (const EtcdKeyValue& kv : all.kvs) {
    if (to.Verify(type, kv.value).ok()) continue;
    auto record = from.Decode<R>(kv.value);
    if (!record.ok()) {
      spdlog::warn("rotation: {} opens under neither key; left as it is",
                   kv.key);
      continue;
    }
    KGR_ASSIGN_OR_RETURN(Bytes sealed, to.Encode(*record));
    KGR_ASSIGN_OR_RETURN(
        EtcdTxnResult r,
        client.Txn({{kv.key, EtcdCompare::Target::kMod,
                     EtcdCompare::Result::kEqual, kv.mod_revision}},
                   {EtcdOp::Put(kv.key, sealed)}, {}));
    if (r.succeeded) ++done;  // else: rewritten meanwhile, the next pass
  }
  return done;
}

StatusOr<size_t> ResealPass(EtcdClient& client, const std::string& prefix,
                            const DomainCodec& from, const DomainCodec& to,
                            const DomainCodec& both) {
  KGR_ASSIGN_OR_RETURN(size_t nodes,
                       ResealTable<NodeDesc>(client, prefix + "/node_desc/",
                                             RecordType::kNodeDesc, from, to));
  KGR_ASSIGN_OR_RETURN(size_t keys,
                       ResealTable<GenKey>(client, prefix + "/gen_keys/",
                                           RecordType::kGenKey, from, to));
  // The AC floor's tag: `both` (newest first) opens a floor under either
  // generation and tags it under the new one.
  KGR_ASSIGN_OR_RETURN(size_t floor,
                       EtcdAcFloor(client, both, prefix).Reseal());
  return nodes + keys + floor;
}

// Step 3: the epoch says resealed; the old wrapped keys go.
Status Retire(EtcdClient& client, const std::string& prefix,
              uint32_t generation) {
  for (int attempt = 0; attempt < kRetireAttempts; ++attempt) {
    KGR_ASSIGN_OR_RETURN(ClusterSnapshot s,
                         ReadClusterSnapshot(client, prefix));
    if (s.view.generation != generation) {
      return AbortedError("rotation: the epoch moved on to generation " +
                          std::to_string(s.view.generation));
    }
    std::vector<EtcdCompare> cmp = {
        {EpochKey(prefix), EtcdCompare::Target::kMod,
         EtcdCompare::Result::kEqual, s.epoch_mod_revision}};
    std::vector<EtcdOp> ops = {
        EtcdOp::Put(EpochKey(prefix),
                    EncodeEpoch(s.view.domain_id, generation, generation))};
    for (ClusterMember& m : s.view.members) {
      const std::string name = MemberKeyName(prefix, m.lane);
      cmp.push_back({name, EtcdCompare::Target::kMod,
                     EtcdCompare::Result::kEqual,
                     s.member_mod_revisions[m.lane]});
      std::erase_if(m.wrapped,
                    [&](const auto& w) { return w.first != generation; });
      ops.push_back(EtcdOp::Put(name, EncodeMember(m)));
    }
    KGR_ASSIGN_OR_RETURN(EtcdTxnResult r, client.Txn(cmp, ops, {}));
    if (r.succeeded) return OkStatus();
  }
  return AbortedError("rotation: the cluster kept changing; run it again");
}

// Steps 2 and 3 for the generation `keys` (newest first: e+1, e).
StatusOr<RotationReport> ResealAndRetire(EtcdClient& client,
                                         const std::string& prefix,
                                         std::vector<DomainKey> keys,
                                         int settle_ms) {
  RotationReport report;
  report.generation = keys.front().generation;
  std::vector<DomainKey> newest, older, all;
  KGR_ASSIGN_OR_RETURN(DomainKey n, Prepared(keys.front()));
  newest.push_back(std::move(n));
  for (size_t i = 0; i < keys.size(); ++i) {
    KGR_ASSIGN_OR_RETURN(DomainKey k, Prepared(keys[i]));
    all.push_back(std::move(k));
    if (i == 0) continue;
    KGR_ASSIGN_OR_RETURN(DomainKey o, Prepared(keys[i]));
    older.push_back(std::move(o));
  }
  DomainCodec to(std::move(newest)), from(std::move(older)),
      both(std::move(all));
  for (int pass = 0; pass < 2; ++pass) {
    std::this_thread::sleep_for(std::chrono::milliseconds(settle_ms));
    KGR_ASSIGN_OR_RETURN(size_t done,
                         ResealPass(client, prefix, from, to, both));
    report.resealed += done;
  }
  KGR_RETURN_IF_ERROR(Retire(client, prefix, report.generation));
  spdlog::info("rotation: generation {} in force, {} records re-sealed",
               report.generation, report.resealed);
  return report;
}

StatusOr<ClusterMember> MemberOf(const ClusterSnapshot& s, uint8_t lane) {
  const ClusterMember* m = s.Member(lane);
  if (m == nullptr) {
    return NotFoundError("cluster: lane " + std::to_string(lane) +
                         " is not a member");
  }
  return *m;
}

}  // namespace

StatusOr<RotationReport> FinishRotation(const MemberAccess& me, int settle_ms) {
  KGR_ASSIGN_OR_RETURN(auto client, EtcdClient::Create(me.etcd));
  KGR_ASSIGN_OR_RETURN(ClusterSnapshot s,
                       ReadClusterSnapshot(*client, me.prefix));
  KGR_ASSIGN_OR_RETURN(ClusterMember mine, MemberOf(s, me.lane));
  KGR_ASSIGN_OR_RETURN(std::vector<DomainKey> keys,
                       UnwrapMemberKeys(s, mine, me.key));
  if (keys.size() < 2) return RotationReport{s.view.generation, 0};
  return ResealAndRetire(*client, me.prefix, std::move(keys), settle_ms);
}

StatusOr<RotationReport> RemoveMember(const MemberAccess& remover, uint8_t lane,
                                      int settle_ms) {
  KGR_ASSIGN_OR_RETURN(auto client, EtcdClient::Create(remover.etcd));
  KGR_ASSIGN_OR_RETURN(ClusterSnapshot s,
                       ReadClusterSnapshot(*client, remover.prefix));
  KGR_ASSIGN_OR_RETURN(ClusterMember mine, MemberOf(s, remover.lane));
  KGR_RETURN_IF_ERROR(MemberOf(s, lane).status());
  if (s.view.members.size() < 2) {
    return FailedPreconditionError(
        "cluster: lane " + std::to_string(lane) +
        " is the last member (nothing would hold the domain key)");
  }
  if (s.view.resealed < s.view.generation) {
    return FailedPreconditionError(
        "cluster: the rotation to generation " +
        std::to_string(s.view.generation) +
        " is not finished: kgr-ks cluster finish-rotation first");
  }
  KGR_ASSIGN_OR_RETURN(std::vector<DomainKey> keys,
                       UnwrapMemberKeys(s, mine, remover.key));
  KGR_ASSIGN_OR_RETURN(DomainKey next, NewDomainKey(s.view.domain_id));
  next.generation = s.view.generation + 1;
  const std::string& prefix = remover.prefix;
  std::vector<EtcdCompare> cmp = {{EpochKey(prefix), EtcdCompare::Target::kMod,
                                   EtcdCompare::Result::kEqual,
                                   s.epoch_mod_revision}};
  std::vector<EtcdOp> ops = {
      EtcdOp::Delete(MemberKeyName(prefix, lane)),
      EtcdOp::Put(
          EpochKey(prefix),
          EncodeEpoch(s.view.domain_id, next.generation, s.view.generation)),
      EtcdOp::Put(DomainCheckKey(prefix), DomainCheckValue(next))};
  for (ClusterMember& m : s.view.members) {
    const std::string name = MemberKeyName(prefix, m.lane);
    cmp.push_back({name, EtcdCompare::Target::kMod, EtcdCompare::Result::kEqual,
                   s.member_mod_revisions[m.lane]});
    if (m.lane == lane) continue;
    KGR_ASSIGN_OR_RETURN(m.wrapped[next.generation],
                         WrapDomainKey(next, m.lane, m.public_key));
    ops.push_back(EtcdOp::Put(name, EncodeMember(m)));
  }
  KGR_ASSIGN_OR_RETURN(EtcdTxnResult r, client->Txn(cmp, ops, {}));
  if (!r.succeeded) {
    return AbortedError(
        "cluster: the cluster changed during the removal: run it again");
  }
  spdlog::info("cluster: lane {} removed; domain key generation {}", lane,
               next.generation);
  keys.insert(keys.begin(), std::move(next));
  return ResealAndRetire(*client, prefix, std::move(keys), settle_ms);
}

}  // namespace kgr
