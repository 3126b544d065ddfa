// The ceremony steps a member runs with its member key (approve, remove,
// finish-rotation), from `kgr-ks cluster` or from the running daemon's
// control socket (which holds the TPM and the state directory). Internal
// to libkgr/daemon/.
#ifndef KGR_DAEMON_KS_CLUSTER_OPS_H_
#define KGR_DAEMON_KS_CLUSTER_OPS_H_

#include <nlohmann/json.hpp>

#include "kgr/cluster_membership.h"

namespace kgr {

// `request`: {"cmd":"cluster","op":"approve","fingerprint":FP} |
// {"op":"remove","lane":N,"settle_ms":MS} | {"op":"finish","settle_ms":MS}.
// The answer: {"ok":true,...} or {"ok":false,"error":"...","code":N}.
nlohmann::json RunClusterOp(const MemberAccess& me,
                            const nlohmann::json& request);

}  // namespace kgr

#endif  // KGR_DAEMON_KS_CLUSTER_OPS_H_
