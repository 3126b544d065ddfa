// kgr-ks restore into etcd: a backup becomes the state of a new cluster
// (ks_backup.h: RestoreKsBackupToEtcd; docs/operations.md "Recovery drill
// of a cluster on etcd").
#include "daemon/ks_backup.h"
#include "daemon/ks_state.h"
#include "kgr/cluster.h"
#include "kgr/cluster_membership.h"
#include "kgr/topic.h"

namespace kgr {
namespace {

// The new cluster: member key, domain key, init, every node written.
Status RestoreInto(const KsOptions& o, const KsBackup& backup,
                   uint64_t now_unix_us, const MemberAccess& me) {
  KGR_ASSIGN_OR_RETURN(DomainKey key, NewDomainKey(backup.own.identity.n_id));
  KGR_RETURN_IF_ERROR(InitCluster(me, key));
  KGR_ASSIGN_OR_RETURN(EtcdStateOptions so, EtcdStateOptionsFor(o));
  KGR_ASSIGN_OR_RETURN(auto state,
                       EtcdKsState::Open(so, DomainKeySource([&me] {
                                           return MemberDomainKeys(me);
                                         })));
  std::vector<NodeDesc> nodes = RestoredNodes(backup, now_unix_us);
  if (!nodes.empty()) KGR_RETURN_IF_ERROR(state->nodes().PutAll(nodes));
  return SaveDomainKey(*DefaultFileSystem(), DomainKeyPath(o.daemon.state_dir),
                       key, backup.own.nk);
}

}  // namespace

Status RestoreKsBackupToEtcd(const KsOptions& o, Tpm& tpm,
                             const KsBackup& backup, uint64_t now_unix_us) {
  KGR_ASSIGN_OR_RETURN(EtcdStateOptions so, EtcdStateOptionsFor(o));
  KGR_ASSIGN_OR_RETURN(auto probe, EtcdKsStateProbe(so));
  if (probe) {
    return FailedPreconditionError(
        "etcd prefix " + so.prefix +
        " holds a KS state: restore only into an empty prefix");
  }
  KGR_RETURN_IF_ERROR(PrepareTpmForRestore(tpm));
  FileSystem& fs = *DefaultFileSystem();
  const std::vector<std::string> files = {MemberKeyPath(o.daemon.state_dir),
                                          DomainKeyPath(o.daemon.state_dir)};
  for (const std::string& f : files) {
    if (fs.Exists(f)) {
      return FailedPreconditionError(
          f + " exists: restore only into a new state directory");
    }
  }
  Status st = [&]() -> Status {
    KGR_ASSIGN_OR_RETURN(auto me, LoadMemberAccess(o, backup.own, true));
    KGR_RETURN_IF_ERROR(RestoreInto(o, backup, now_unix_us, *me));
    return SaveInitialOwnData(tpm, backup.own);
  }();
  if (!st.ok()) {
    for (const std::string& f : files) (void)fs.Remove(f);
    (void)EtcdKsStateErase(so);
  }
  return st;
}

}  // namespace kgr
