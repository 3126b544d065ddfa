// The parts both daemons plug together: the TPM, the MQTT transport and the
// control socket, opened from the daemon options (daemon.h). Internal to
// libkgr/daemon/.
#ifndef KGR_DAEMON_WIRING_H_
#define KGR_DAEMON_WIRING_H_

#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "kgr/control.h"
#include "kgr/daemon.h"
#include "kgr/event_loop.h"
#include "kgr/own_data.h"
#include "kgr/status.h"
#include "kgr/store.h"
#include "kgr/tpm.h"
#include "kgr/transport.h"

namespace kgr {

// The TPM (or software store) named by o.tcti, its files in o.state_dir.
StatusOr<std::unique_ptr<Tpm>> OpenTpmFor(const DaemonOptions& o);

// A daemon's start on its state directory: takes the directory's lock
// (one process per directory), opens the TPM and loads the own data in it,
// which must be of `role` (FAILED_PRECONDITION otherwise; without own data
// the error says to run init first).
StatusOr<OwnData> OpenOwnData(const DaemonOptions& o, Role role,
                              std::unique_ptr<DirLock>& lock,
                              std::unique_ptr<Tpm>& tpm);

// Store options of the daemon's record files (journal preallocation).
StoreOptions StoreOptionsFor(const DaemonOptions& o);

// An unconnected MQTT transport to b.address over b's client library, TLS
// files and QoS, under the session id `client_id` (empty: a random one).
// `clean_session`: see MqttOptions (a clustered KS instance).
StatusOr<std::unique_ptr<Transport>> OpenTransport(const BrokerOptions& b,
                                                   const std::string& client_id,
                                                   bool clean_session = false);

// <state_dir>/control.sock: where a daemon listens and its commands ask.
std::string ControlSocketPath(const std::string& state_dir);

// Serves the control socket of `state_dir`: each request runs as
// `execute(request, respond)` on `loop`'s thread; when the loop refuses
// the task (queue full, stopped) the answer is `busy`.
using ControlExecute = std::function<void(const nlohmann::json& request,
                                          ControlServer::Respond respond)>;
StatusOr<std::unique_ptr<ControlServer>> ServeControl(
    const std::string& state_dir, EventLoop& loop, ControlExecute execute,
    nlohmann::json busy);

}  // namespace kgr

#endif  // KGR_DAEMON_WIRING_H_
