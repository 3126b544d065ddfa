// The commands of kgr-ks (daemon layer, see daemon.h). Each returns the
// Status the executable turns into its exit code; what they print on
// stdout and log is part of their contract (tests/e2e check it).
#ifndef KGR_KS_DAEMON_H_
#define KGR_KS_DAEMON_H_

#include <cstdint>
#include <string>

#include "kgr/daemon.h"
#include "kgr/key_server.h"
#include "kgr/status.h"

namespace kgr {

struct KsOptions {
  DaemonOptions daemon;  // broker.ca/cert/key: the KS's TLS and CMS files
  std::string topic_prefix;
  // gen_key_ttl_ms, node_frames_per_s, node_burst, max_pending; the counter
  // floor is read from <state_dir>/counter.
  KeyServerOptions key_server;
};

// `init`: the KS's trust structure and own data in the TPM (idempotent).
Status KsInit(const KsOptions& o);
// `run`: serves until SIGTERM/SIGINT (blocks them first; call before any
// other thread starts). Prints "kgr-ks ready: ..." once serving.
Status KsRun(const KsOptions& o);
// `status`: asks the running daemon, else reads the stores itself.
Status KsStatus(const KsOptions& o, bool as_json);
// `rotate --node ID`: asks the running daemon to rotate the node's NKSK.
Status KsRotate(const KsOptions& o, uint32_t node);

}  // namespace kgr

#endif  // KGR_KS_DAEMON_H_
