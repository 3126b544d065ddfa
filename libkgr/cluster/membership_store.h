// Internal to libkgr/cluster/: the ceremony's keys in etcd and their JSON
// values (kgr/cluster_membership.h has the layout).
#ifndef KGR_CLUSTER_MEMBERSHIP_STORE_H_
#define KGR_CLUSTER_MEMBERSHIP_STORE_H_

#include <map>
#include <string>
#include <vector>

#include "cluster/etcd_client.h"
#include "kgr/cluster_membership.h"

namespace kgr {

std::string EpochKey(const std::string& prefix);
std::string MemberKeyName(const std::string& prefix, uint8_t lane);
std::string JoinKeyName(const std::string& prefix,
                        const std::string& fingerprint);
std::string DomainCheckKey(const std::string& prefix);

Bytes EncodeEpoch(uint32_t domain_id, uint32_t generation, uint32_t resealed);
Bytes EncodeMember(const ClusterMember& m);
Bytes EncodeJoin(const JoinRequest& j);

// One consistent read of <prefix>/domain and <prefix>/cluster/.
struct ClusterSnapshot {
  ClusterView view;
  Bytes domain_check;               // <prefix>/domain, empty if absent
  int64_t epoch_mod_revision = 0;   // 0: no cluster
  int64_t domain_mod_revision = 0;  // 0: no state
  std::map<uint8_t, int64_t> member_mod_revisions;
  const ClusterMember* Member(uint8_t lane) const;
};
StatusOr<ClusterSnapshot> ReadClusterSnapshot(EtcdClient& client,
                                              const std::string& prefix);

// The domain keys wrapped to `m` (newest first) that `view` still uses,
// unwrapped with `key`; the newest is checked against `domain_check`.
StatusOr<std::vector<DomainKey>> UnwrapMemberKeys(const ClusterSnapshot& s,
                                                  const ClusterMember& m,
                                                  const X25519KeyPair& key);

}  // namespace kgr

#endif  // KGR_CLUSTER_MEMBERSHIP_STORE_H_
