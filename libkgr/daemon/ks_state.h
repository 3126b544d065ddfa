// What the KS keeps in its state directory besides the TPM (the node_desc
// and gen_keys stores) and how `kgr-ks status` shows it. Internal to
// libkgr/daemon/.
#ifndef KGR_DAEMON_KS_STATE_H_
#define KGR_DAEMON_KS_STATE_H_

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>

#include "kgr/cluster.h"
#include "kgr/cluster_membership.h"
#include "kgr/daemon.h"
#include "kgr/key_server.h"
#include "kgr/ks_daemon.h"
#include "kgr/ks_state.h"
#include "kgr/own_data.h"
#include "kgr/store.h"
#include "kgr/tpm.h"

namespace kgr {

// The KS's state: its record files (`nodes`, `gen_keys`), or etcd (both
// null). `state` is what the KeyServer runs on: FileKsState over the two
// stores, or the etcd backend.
struct KsStores {
  std::unique_ptr<NodeDescStore> nodes;
  std::unique_ptr<GenKeysStore> gen_keys;
  std::unique_ptr<KsState> state;
  std::unique_ptr<GroupDescStore> groups;  // kgr-ac group
  // On etcd, a member of a cluster (kgr-ks cluster init/join): who it is.
  std::shared_ptr<MemberAccess> member;
};

// <state_dir>/ac_counter: the highest AC request counter the KS accepted,
// written before it acts on the request (KeyServerOptions).
std::string AcCounterPath(const std::string& state_dir);

// Opens <state_dir>/node_desc, gen_keys and groups under the KS's NK.
StatusOr<KsStores> OpenKsStores(const DaemonOptions& o, const OwnData& own);

// The KS's state for `kgr-ks run` and `status`: on etcd with
// o.state_url (the domain key from <state_dir>/domain_key, made with a new
// state), else OpenKsStores.
StatusOr<KsStores> OpenKsState(const KsOptions& o, const OwnData& own);

// Where the etcd state of o.state_url is.
StatusOr<EtcdStateOptions> EtcdStateOptionsFor(const KsOptions& o);
// This member's part in the ceremony: o's etcd, prefix and lane
// (--instance), and <state_dir>/member_key (with `create`, made if absent).
StatusOr<std::shared_ptr<MemberAccess>> LoadMemberAccess(const KsOptions& o,
                                                         const OwnData& own,
                                                         bool create);

// The status as JSON: nodes, pending keys, corrupt records, TPM counters,
// and with a running `ks` its counters since start.
nlohmann::json KsStatusJson(const KeyServer* ks, const NodeDescTable& nodes,
                            const GenKeysTable& gen_keys, uint32_t n_id,
                            const TpmCounters& tpm);

}  // namespace kgr

#endif  // KGR_DAEMON_KS_STATE_H_
