// The commands of kgr-ks (daemon layer, see daemon.h). Each returns the
// Status the executable turns into its exit code; what they print on
// stdout and log is part of their contract (tests/e2e check it).
#ifndef KGR_KS_DAEMON_H_
#define KGR_KS_DAEMON_H_

#include <cstdint>
#include <string>

#include "kgr/cli.h"
#include "kgr/daemon.h"
#include "kgr/key_server.h"
#include "kgr/status.h"

namespace kgr {

// Continuous backups (docs/operations.md): off while `dir` is empty.
struct KsBackupOptions {
  std::string dir;
  std::string recovery_public_file;  // PEM, X25519
  uint64_t interval_s = 10;
  uint64_t keep = 20;
};

struct KsOptions {
  DaemonOptions daemon;  // broker.ca/cert/key: the KS's TLS and CMS files
  std::string topic_prefix;
  KsBackupOptions backup;
  // gen_key_ttl_ms, node_frames_per_s, node_burst, max_pending; the counter
  // floor is read from <state_dir>/counter.
  KeyServerOptions key_server;
  // --state etcd://host:port[,host:port]/prefix (config `state`): the KS
  // state on etcd (docs/cluster.md); empty: the files of state_dir.
  std::string state_url;
  std::string etcd_ca_file, etcd_cert_file, etcd_key_file;  // etcd TLS
};

// From kgr-ks's settings rows (ks-node/main.cc): the shared daemon rows,
// topic_prefix, the KeyServer's limits and the backup rows. INVALID_ARGUMENT
// naming the setting for a combination that cannot work.
StatusOr<KsOptions> KsOptionsFrom(const CommandLine& c);

// `init`: the KS's trust structure and own data in the TPM (idempotent).
Status KsInit(const KsOptions& o);
// `run`: serves until SIGTERM/SIGINT (blocks them first; call before any
// other thread starts). Prints "kgr-ks ready: ..." once serving.
Status KsRun(const KsOptions& o);
// `status`: asks the running daemon, else reads the stores itself.
Status KsStatus(const KsOptions& o, bool as_json);
// `rotate --node ID`: asks the running daemon to rotate the node's NKSK.
Status KsRotate(const KsOptions& o, uint32_t node);

// `recovery-key`: a new X25519 recovery key pair in two new files (the
// private one 0600); refuses to overwrite either.
Status KsRecoveryKey(const std::string& private_file,
                     const std::string& public_file);
// `backup --out FILE`: a backup encrypted to o.backup.recovery_public_file,
// made by the running daemon from its live state, else from the state
// directory and the TPM. Prints the path, the node count and the size.
Status KsBackupNow(const KsOptions& o, const std::string& out_file);
// `restore --backup FILE --recovery-key FILE`: onto this TPM and the new
// state directory o.daemon.state_dir (ks_backup.h: RestoreKsBackup).
Status KsRestore(const KsOptions& o, const std::string& backup_file,
                 const std::string& recovery_key_file);

// `cluster <sub>` (docs/cluster.md "Membership ceremony"), on etcd
// (o.state_url): init, join, approve --fingerprint FP, remove --lane N,
// leave (remove this member), finish-rotation, status. approve, remove,
// leave and finish-rotation go to the running daemon if there is one.
struct ClusterCommand {
  std::string sub;
  std::string fingerprint;  // approve
  int lane = -1;            // remove
  int wait_s = 300;         // join: how long to wait for the approval
  int settle_ms = 2000;     // remove: the instances' time to take the key
  bool as_json = false;     // status
};
Status KsCluster(const KsOptions& o, const ClusterCommand& c);

}  // namespace kgr

#endif  // KGR_KS_DAEMON_H_
