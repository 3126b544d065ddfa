// The node daemon's control commands: the JSON requests `kgr-node
// <command>` sends over the control socket (or runs in its own process)
// and their answers. Internal to libkgr/daemon/.
//
// Request: {"cmd": C, "timeout_ms": N, ...}, C one of register, rotate,
// peers ("node", "peers": [N_ID...]), request-key and renew ("peer"), send
// ("peer", "data"), status. Answer: {"ok": true, ...} or {"ok": false,
// "code": "<StatusCodeName>", "error": "<message>"}.
#ifndef KGR_DAEMON_NODE_CONTROL_H_
#define KGR_DAEMON_NODE_CONTROL_H_

#include <nlohmann/json.hpp>

#include "kgr/clock.h"
#include "kgr/control.h"
#include "kgr/node_client.h"
#include "kgr/status.h"
#include "kgr/tpm.h"

namespace kgr {

// Runs one request on `client` (on its loop's thread). `respond` is called
// exactly once: now, or when the request finishes (after its timeout_ms,
// 0: the client's request timeout, at the latest). `tpm` and `clock` feed
// the status answer.
void ExecuteNodeCommand(NodeClient& client, const Tpm& tpm, Clock& clock,
                        const nlohmann::json& request,
                        ControlServer::Respond respond);

// The answer {"ok": false, "code": ..., "error": ...} for `status`.
nlohmann::json FailureAnswer(const Status& status);
// The Status an answer stands for: OK, or its code (an unknown code is
// INTERNAL) with its error message.
Status StatusFromAnswer(const nlohmann::json& answer);

}  // namespace kgr

#endif  // KGR_DAEMON_NODE_CONTROL_H_
