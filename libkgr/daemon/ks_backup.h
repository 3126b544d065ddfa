// Backups in the KS daemon and its commands (docs/operations.md). Internal
// to libkgr/daemon/.
#ifndef KGR_DAEMON_KS_BACKUP_H_
#define KGR_DAEMON_KS_BACKUP_H_

#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "kgr/ks_backup.h"
#include "kgr/ks_daemon.h"
#include "ks/backup_schedule.h"

namespace kgr {

// The raw recovery public key in PEM file `file`.
StatusOr<Bytes> ReadRecoveryPublic(const std::string& file);

// A copy of `own` (its keys cloned).
OwnData CloneOwnData(const OwnData& own);

// Seals a backup of `own` and `nodes` to `recovery_public` and writes it
// to `path` (atomically, 0600). {"path", "nodes", "bytes"}.
StatusOr<nlohmann::json> WriteBackupFile(
    const OwnData& own, const NodeDescStore& nodes,
    std::span<const uint8_t> recovery_public, const std::string& path);
StatusOr<nlohmann::json> WriteBackupFile(
    const OwnData& own, const NodeDescTable& nodes,
    std::span<const uint8_t> recovery_public, const std::string& path);

// `kgr-ks restore --state etcd://...` (ks_restore_etcd.cc): `backup` onto
// this TPM and into an empty etcd prefix, as the first member of a new
// cluster (a new domain key, `kgr-ks cluster init` done); the floors raised
// as RestoreKsBackup does. On failure nothing is left behind: the prefix
// emptied again, no member or domain key file, no NV write.
Status RestoreKsBackupToEtcd(const KsOptions& o, Tpm& tpm,
                             const KsBackup& backup, uint64_t now_unix_us);

// The daemon's side: continuous backups (if o.backup.dir is set) and the
// control command "backup". Lives on the KS's event loop.
class KsBackups {
 public:
  // Reads the recovery public key when continuous backups are on.
  static StatusOr<std::unique_ptr<KsBackups>> Create(const KsOptions& o,
                                                     const OwnData& own);

  // Every second: a backup if node_desc changed (see BackupSchedule).
  // Failures are logged once per change of the error.
  void Tick(const NodeDescStore& nodes, uint64_t node_desc_changes);
  // {"cmd": "backup", "recovery_public_pem": PEM}: writes a backup into the
  // state directory for the asking command to take. Its answer.
  // `nodes`: the KS state's (files or etcd).
  nlohmann::json OnDemand(const nlohmann::json& request,
                          const NodeDescTable& nodes);
  // For `kgr-ks status`: {"dir", "last", "pending_changes", "error"}, or
  // null when continuous backups are off.
  nlohmann::json StatusJson(uint64_t node_desc_changes) const;

 private:
  KsBackups(const KsOptions& o, OwnData own) : o_(o), own_(std::move(own)) {}

  const KsOptions& o_;
  const OwnData own_;
  std::unique_ptr<BackupSchedule> schedule_;
  std::string last_error_;
};

}  // namespace kgr

#endif  // KGR_DAEMON_KS_BACKUP_H_
