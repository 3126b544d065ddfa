// One node process once initialized: the state directory's lock, the TPM,
// the ses_keys store, the MQTT transport, the NodeClient on an event loop
// and the frame counter file. `kgr-node run` serves it; the other commands
// use one in their own process when no daemon runs. Internal to
// libkgr/daemon/.
#ifndef KGR_DAEMON_NODE_SERVICE_H_
#define KGR_DAEMON_NODE_SERVICE_H_

#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "daemon/counter_saver.h"
#include "daemon/service_notifier.h"
#include "kgr/control.h"
#include "kgr/event_loop.h"
#include "kgr/node_client.h"
#include "kgr/node_daemon.h"
#include "kgr/store.h"
#include "kgr/tpm.h"
#include "kgr/transport.h"

namespace kgr {

class NodeService {
 public:
  // Opens everything, connects and starts the client (messages are handled
  // on loop()).
  static StatusOr<std::unique_ptr<NodeService>> Open(const NodeOptions& o);
  // A clean stop: the exact receive counters and usage, the frame counter.
  ~NodeService();

  // Persists the last frame counter if it changed (the daemon: every
  // second; and at exit).
  void SaveCounterIfChanged();
  // Runs one control command on the loop's thread (node_control.h).
  void Execute(const nlohmann::json& req, ControlServer::Respond respond);

  // READY=1 to systemd (Type=notify): serving, or serving again after a
  // reload.
  void NotifyReady();
  // SIGHUP, on the loop: the config read again and what can change at
  // runtime applied (log_level, timeout_ms, policy.*); a bad config is
  // refused whole. `running`: the options the daemon started with.
  void Reload(const NodeOptions& running);

  EventLoop& loop() { return loop_; }
  NodeClient& client() { return *client_; }
  ServiceNotifier& notifier() { return notifier_; }
  TpmCounters tpm_counters() const { return tpm_->counters(); }
  Transport& transport() { return *transport_; }

 private:
  explicit NodeService(const NodeOptions& o);

  EventLoop loop_;
  CounterSaver counter_;
  std::unique_ptr<DirLock> lock_;
  std::unique_ptr<Tpm> tpm_;
  std::unique_ptr<SesKeysStore> ses_;
  std::unique_ptr<GroupStore> groups_;  // grp_keys
  std::unique_ptr<Transport> transport_;
  std::unique_ptr<NodeClient> client_;
  ServiceNotifier notifier_;
};

// <state_dir>/tls/<name>: the broker files `kgr-node init` installs.
std::string NodeTlsPath(const NodeOptions& o, const char* name);

}  // namespace kgr

#endif  // KGR_DAEMON_NODE_SERVICE_H_
