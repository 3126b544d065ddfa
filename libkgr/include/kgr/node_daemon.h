// The commands of kgr-node (daemon layer, see daemon.h). Each returns the
// Status the executable turns into its exit code; what they print on
// stdout and log is part of their contract (tests/e2e check it).
#ifndef KGR_NODE_DAEMON_H_
#define KGR_NODE_DAEMON_H_

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "kgr/daemon.h"
#include "kgr/node_client.h"
#include "kgr/status.h"

namespace kgr {

struct NodeOptions {
  DaemonOptions daemon;  // broker.address empty: the BA of the credentials
  // request_timeout_ms (also the deadline of one command), policy,
  // pair_policy; the counter floor is read from <state_dir>/counter.
  NodeClientOptions client;
  // The application API (docs/api.md): its socket (empty:
  // <state_dir>/app.sock), the socket's group (empty: mode 0600, else 0660
  // with that group), api.users, and the events queued per application.
  struct Api {
    std::string socket;
    std::string group;
    nlohmann::json users;
    size_t queue_messages = 1024;
  } api;
  // The broker certificate is renewed over the KGR channel once this share
  // of its validity (notBefore..notAfter) has passed (cert_renew_at_percent;
  // 0: never). docs/operations.md, "Certificate renewal".
  int cert_renew_at_percent = 67;
};

// The config key policy.pairs: {"<peer N_ID>": {"max_frames": N,
// "max_bytes": N, "max_age_s": N}}, each limit defaulting to `node_wide`.
// INVALID_ARGUMENT naming the config key that is wrong.
StatusOr<std::map<uint32_t, KeyPolicy>> ParsePairPolicy(
    const nlohmann::json& pairs, const KeyPolicy& node_wide);

// `init --credentials FILE`: verifies the file completely, writes the
// broker files, then the TPM; a state directory it created is removed
// again if it fails.
Status NodeInit(const NodeOptions& o, const std::string& credentials_file);
// `run`: the daemon, until SIGTERM/SIGINT. Prints "kgr-node ready: ...".
Status NodeRun(const NodeOptions& o);

// One of the commands register, peers, request-key, renew, send, status,
// rotate, with its flags (checked here: "send needs --data", ...).
struct NodeCommand {
  std::string name;
  std::optional<std::string> peers_file;  // peers --file
  std::optional<uint32_t> peer;           // --peer
  std::optional<std::string> data;        // send, group-send --data
  std::optional<uint32_t> group;          // group-send, group-recv --group
  bool json = false;                      // status --json
  uint64_t count = 0;   // group-recv: stop after this many (0: never)
  uint64_t wait_s = 0;  // group-recv: stop after this long (0: never)
};
// group-recv: prints the group messages the running daemon delivers
// (through its application API socket) until `count` came or `wait_s`
// passed; DEADLINE_EXCEEDED if fewer than `count` came.
Status NodeGroupRecv(const NodeOptions& o, const NodeCommand& command);
// Runs `command` in the daemon if one listens on the state directory's
// control socket, else in this process; prints its result.
Status RunNodeCommand(const NodeOptions& o, const NodeCommand& command);

}  // namespace kgr

#endif  // KGR_NODE_DAEMON_H_
