// The membership ceremony of a KS cluster on etcd (docs/cluster.md
// "Membership ceremony"): init, join with a member's approval, removal with
// an online rotation of the domain key, status. libkgr/cluster/
// member_key.cc, membership.cc, rotation.cc.
//
// Layout in etcd under <prefix>/cluster/:
//   epoch                 {"domain_id","generation","resealed"} (JSON)
//   members/<lane, 3 dec> {"lane","name","public","keys":{"<gen>":wrapped}}
//   join/<fingerprint>    {"lane","name","public"}
// A wrapped key is the domain key of one generation encrypted to the
// member's X25519 member key (ECIES: ephemeral X25519, HKDF-SHA256,
// AES-256-CTR + HMAC-SHA256): etcd never holds a domain key in clear.
#ifndef KGR_CLUSTER_MEMBERSHIP_H_
#define KGR_CLUSTER_MEMBERSHIP_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "kgr/cluster.h"
#include "kgr/crypto.h"
#include "kgr/filesystem.h"
#include "kgr/status.h"

namespace kgr {

// A member's key for the ceremony: X25519, the private half only in
// <state_dir>/member_key sealed under the member's NK (which only its TPM
// holds), like the domain key.
std::string MemberKeyPath(const std::string& state_dir);
// The key in `path`; with `create`, a new one if there is none.
StatusOr<X25519KeyPair> LoadMemberKey(FileSystem& fs, const std::string& path,
                                      const RecordKeys& member_nk, bool create);
// SHA-256 of the public key: 8 groups of 4 hex digits, for the operator to
// compare out of band.
std::string MemberFingerprint(std::span<const uint8_t> public_key);

// The domain key of `key.generation` encrypted to a member's public key
// (bound to its lane), and back.
StatusOr<Bytes> WrapDomainKey(const DomainKey& key, uint8_t lane,
                              std::span<const uint8_t> member_public);
StatusOr<DomainKey> UnwrapDomainKey(std::span<const uint8_t> wrapped,
                                    uint32_t domain_id, uint32_t generation,
                                    uint8_t lane, const X25519KeyPair& member);

struct ClusterMember {
  uint8_t lane = 0;
  std::string name;
  Bytes public_key;
  std::map<uint32_t, Bytes> wrapped;  // generation -> wrapped domain key
};
struct JoinRequest {
  uint8_t lane = 0;
  std::string name;
  Bytes public_key;
  std::string fingerprint;
};
struct ClusterView {
  uint32_t domain_id = 0;
  uint32_t generation = 0;  // 0: no cluster at the prefix
  uint32_t resealed = 0;    // < generation: a rotation is under way
  std::vector<ClusterMember> members;
  std::vector<JoinRequest> joins;
};

// Who runs a ceremony step: this member's lane (--instance), its name and
// key, and where the state is.
struct MemberAccess {
  EtcdOptions etcd;
  std::string prefix;
  uint8_t lane = 0;
  std::string name;
  X25519KeyPair key;
};

StatusOr<ClusterView> ReadCluster(const EtcdOptions& etcd,
                                  const std::string& prefix);
// The first member: registers `key` (generation 1, or the key of an existing
// single-instance state at the prefix, checked against <prefix>/domain).
// FAILED_PRECONDITION if a cluster exists there.
Status InitCluster(const MemberAccess& me, const DomainKey& key);
// A new member: its join request. Returns the fingerprint to compare.
StatusOr<std::string> RequestJoin(const MemberAccess& me);
// Waits up to `wait_ms` for an approval; the domain keys the member holds
// then (newest first), each checked. On a timeout the request is withdrawn.
StatusOr<std::vector<DomainKey>> AwaitJoin(const MemberAccess& me, int wait_ms);
// An existing member approves the join request with `fingerprint`.
Status ApproveJoin(const MemberAccess& approver,
                   const std::string& fingerprint);
// The domain keys this member holds in etcd, newest first (two during a
// rotation). NOT_FOUND: not a member (removed, or never joined).
StatusOr<std::vector<DomainKey>> MemberDomainKeys(const MemberAccess& me);

// Removes the member at `lane` and rotates the domain key online
// (rotation.cc): a new generation wrapped to every remaining member, then
// every record at the prefix re-sealed under it by compare-and-swap, then the
// old generation retired. `settle_ms`: how long the running instances get
// to take the new key before the last re-seal pass (> their poll interval).
struct RotationReport {
  uint32_t generation = 0;
  size_t resealed = 0;
};
StatusOr<RotationReport> RemoveMember(const MemberAccess& remover, uint8_t lane,
                                      int settle_ms = 2000);
// Finishes a rotation a remover did not (crashed): re-seal and retire.
StatusOr<RotationReport> FinishRotation(const MemberAccess& me,
                                        int settle_ms = 2000);

}  // namespace kgr

#endif  // KGR_CLUSTER_MEMBERSHIP_H_
