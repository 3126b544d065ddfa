// The membership ceremony: init, join request, approval, and a member's
// domain keys (kgr/cluster_membership.h; rotation.cc removes members).
#include <spdlog/spdlog.h>

#include <chrono>
#include <thread>

#include "cluster/membership_store.h"

namespace kgr {
namespace {

using JoinClock = std::chrono::steady_clock;
constexpr auto kJoinPoll = std::chrono::milliseconds(200);

StatusOr<std::unique_ptr<EtcdClient>> MemberClient(const MemberAccess& me) {
  if (me.prefix.empty() || me.prefix[0] != '/') {
    return InvalidArgumentError("cluster: prefix must start with '/'");
  }
  if (me.key.public_key.size() != kX25519Size) {
    return InvalidArgumentError("cluster: no member key");
  }
  return EtcdClient::Create(me.etcd);
}

}  // namespace

StatusOr<ClusterView> ReadCluster(const EtcdOptions& etcd,
                                  const std::string& prefix) {
  KGR_ASSIGN_OR_RETURN(auto client, EtcdClient::Create(etcd));
  KGR_ASSIGN_OR_RETURN(ClusterSnapshot s, ReadClusterSnapshot(*client, prefix));
  return std::move(s.view);
}

Status InitCluster(const MemberAccess& me, const DomainKey& key) {
  KGR_ASSIGN_OR_RETURN(auto client, MemberClient(me));
  ClusterMember m{me.lane, me.name, me.key.public_key, {}};
  KGR_ASSIGN_OR_RETURN(m.wrapped[key.generation],
                       WrapDomainKey(key, me.lane, me.key.public_key));
  const Bytes check = DomainCheckValue(key);
  // Create-only: no cluster yet; <prefix>/domain absent or this very key
  // (a single-instance state made by `kgr-ks run` becomes the cluster's).
  KGR_ASSIGN_OR_RETURN(ClusterSnapshot s,
                       ReadClusterSnapshot(*client, me.prefix));
  if (s.epoch_mod_revision != 0) {
    return FailedPreconditionError(
        "cluster: " + me.prefix + " already has a cluster (generation " +
        std::to_string(s.view.generation) + "): join it instead");
  }
  if (s.domain_mod_revision != 0 && s.domain_check != check) {
    return FailedPreconditionError(
        "cluster: the state at " + me.prefix +
        " belongs to another domain key than this member's");
  }
  std::vector<EtcdCompare> cmp = {
      {EpochKey(me.prefix), EtcdCompare::Target::kCreate,
       EtcdCompare::Result::kEqual, 0},
      {DomainCheckKey(me.prefix), EtcdCompare::Target::kMod,
       EtcdCompare::Result::kEqual, s.domain_mod_revision}};
  KGR_ASSIGN_OR_RETURN(
      EtcdTxnResult r,
      client->Txn(
          cmp,
          {EtcdOp::Put(
               EpochKey(me.prefix),
               EncodeEpoch(key.domain_id, key.generation, key.generation)),
           EtcdOp::Put(MemberKeyName(me.prefix, me.lane), EncodeMember(m)),
           EtcdOp::Put(DomainCheckKey(me.prefix), check)},
          {}));
  if (!r.succeeded) {
    return AbortedError("cluster: another init raced this one at " + me.prefix);
  }
  return OkStatus();
}

StatusOr<std::string> RequestJoin(const MemberAccess& me) {
  KGR_ASSIGN_OR_RETURN(auto client, MemberClient(me));
  KGR_ASSIGN_OR_RETURN(ClusterSnapshot s,
                       ReadClusterSnapshot(*client, me.prefix));
  if (s.epoch_mod_revision == 0) {
    return FailedPreconditionError(
        "cluster: no cluster at " + me.prefix +
        " (kgr-ks cluster init on the first member)");
  }
  if (const ClusterMember* m = s.Member(me.lane)) {
    if (m->public_key == me.key.public_key) {
      return AlreadyExistsError("cluster: this member is already lane " +
                                std::to_string(me.lane));
    }
    return AlreadyExistsError("cluster: lane " + std::to_string(me.lane) +
                              " is another member's (" + m->name + ")");
  }
  const std::string fp = MemberFingerprint(me.key.public_key);
  JoinRequest j{me.lane, me.name, me.key.public_key, fp};
  KGR_RETURN_IF_ERROR(
      client->Put(JoinKeyName(me.prefix, fp), EncodeJoin(j)).status());
  return fp;
}

StatusOr<std::vector<DomainKey>> AwaitJoin(const MemberAccess& me,
                                           int wait_ms) {
  KGR_ASSIGN_OR_RETURN(auto client, MemberClient(me));
  const auto deadline = JoinClock::now() + std::chrono::milliseconds(wait_ms);
  while (true) {
    auto s = ReadClusterSnapshot(*client, me.prefix);
    if (s.ok()) {
      if (const ClusterMember* m = s->Member(me.lane);
          m != nullptr && m->public_key == me.key.public_key) {
        return UnwrapMemberKeys(*s, *m, me.key);
      }
    }
    if (JoinClock::now() >= deadline) break;
    std::this_thread::sleep_for(kJoinPoll);
  }
  const std::string fp = MemberFingerprint(me.key.public_key);
  (void)client->Delete(JoinKeyName(me.prefix, fp));
  return DeadlineExceededError("cluster: no member approved join request " +
                               fp + " within " + std::to_string(wait_ms) +
                               " ms (withdrawn)");
}

Status ApproveJoin(const MemberAccess& approver,
                   const std::string& fingerprint) {
  KGR_ASSIGN_OR_RETURN(auto client, MemberClient(approver));
  KGR_ASSIGN_OR_RETURN(ClusterSnapshot s,
                       ReadClusterSnapshot(*client, approver.prefix));
  const ClusterMember* me = s.Member(approver.lane);
  if (me == nullptr) {
    return PermissionDeniedError("cluster: lane " +
                                 std::to_string(approver.lane) +
                                 " is not a member: it cannot approve");
  }
  const JoinRequest* req = nullptr;
  for (const JoinRequest& j : s.view.joins) {
    if (j.fingerprint == fingerprint) req = &j;
  }
  if (req == nullptr) {
    return NotFoundError("cluster: no join request with fingerprint " +
                         fingerprint);
  }
  if (s.Member(req->lane) != nullptr) {
    return AlreadyExistsError("cluster: lane " + std::to_string(req->lane) +
                              " is a member already");
  }
  KGR_ASSIGN_OR_RETURN(std::vector<DomainKey> keys,
                       UnwrapMemberKeys(s, *me, approver.key));
  ClusterMember joiner{req->lane, req->name, req->public_key, {}};
  for (const DomainKey& k : keys) {
    KGR_ASSIGN_OR_RETURN(joiner.wrapped[k.generation],
                         WrapDomainKey(k, req->lane, req->public_key));
  }
  const std::string join_key = JoinKeyName(approver.prefix, fingerprint);
  KGR_ASSIGN_OR_RETURN(
      EtcdTxnResult r,
      client->Txn(
          {{EpochKey(approver.prefix), EtcdCompare::Target::kMod,
            EtcdCompare::Result::kEqual, s.epoch_mod_revision},
           {MemberKeyName(approver.prefix, req->lane),
            EtcdCompare::Target::kCreate, EtcdCompare::Result::kEqual, 0},
           {join_key, EtcdCompare::Target::kCreate,
            EtcdCompare::Result::kNotEqual, 0}},
          {EtcdOp::Put(MemberKeyName(approver.prefix, req->lane),
                       EncodeMember(joiner)),
           EtcdOp::Delete(join_key)},
          {}));
  if (!r.succeeded) {
    return AbortedError(
        "cluster: the cluster changed during the approval (a rotation, or "
        "another approval): run it again");
  }
  spdlog::info("cluster: approved {} (lane {}, fingerprint {})", req->name,
               req->lane, fingerprint);
  return OkStatus();
}

StatusOr<std::vector<DomainKey>> MemberDomainKeys(const MemberAccess& me) {
  KGR_ASSIGN_OR_RETURN(auto client, MemberClient(me));
  KGR_ASSIGN_OR_RETURN(ClusterSnapshot s,
                       ReadClusterSnapshot(*client, me.prefix));
  if (s.epoch_mod_revision == 0) {
    return NotFoundError("cluster: no cluster at " + me.prefix);
  }
  const ClusterMember* m = s.Member(me.lane);
  if (m == nullptr || m->public_key != me.key.public_key) {
    return NotFoundError("cluster: this member (lane " +
                         std::to_string(me.lane) + ") is not a member of " +
                         me.prefix + " (removed?)");
  }
  return UnwrapMemberKeys(s, *m, me.key);
}

}  // namespace kgr
