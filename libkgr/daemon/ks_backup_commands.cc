// kgr-ks recovery-key, backup and restore (docs/operations.md).
#include <cstdio>

#include "daemon/ks_backup.h"
#include "daemon/ks_state.h"
#include "daemon/wiring.h"
#include "kgr/clock.h"
#include "kgr/control.h"
#include "kgr/counter_file.h"
#include "kgr/topic.h"

namespace kgr {
namespace {

Status PrintWritten(const nlohmann::json& j, const std::string& out) {
  std::printf("backup %s: %zu nodes, %zu bytes\n", out.c_str(),
              j.value("nodes", size_t{0}), j.value("bytes", size_t{0}));
  return OkStatus();
}

// The running daemon writes the backup into its state directory; we move it
// to `out` (the daemon may not write anywhere else).
Status BackupThroughDaemon(const KsOptions& o, const std::string& pem,
                           const std::string& out, bool* daemon_runs) {
  auto r =
      ControlCall(ControlSocketPath(o.daemon.state_dir),
                  {{"cmd", "backup"}, {"recovery_public_pem", pem}}, 60'000);
  *daemon_runs = r.ok();
  if (!r.ok()) return r.status();
  if (!r->value("ok", false)) {
    return InternalError("the daemon: " + r->value("error", "failed"));
  }
  FileSystem& fs = *DefaultFileSystem();
  const std::string written = r->value("path", "");
  auto bytes = fs.ReadFile(written);
  Status st =
      bytes.ok() ? fs.WriteFileAtomic(out, *bytes, 0600) : bytes.status();
  (void)fs.Remove(written);
  KGR_RETURN_IF_ERROR(st);
  return PrintWritten(*r, out);
}

}  // namespace

Status KsRecoveryKey(const std::string& private_file,
                     const std::string& public_file) {
  FileSystem& fs = *DefaultFileSystem();
  for (const std::string& f : {private_file, public_file}) {
    if (f.empty()) {
      return InvalidArgumentError(
          "recovery-key needs --out-private and --out-public");
    }
    if (fs.Exists(f)) return AlreadyExistsError(f + " exists: not overwritten");
  }
  KGR_ASSIGN_OR_RETURN(RecoveryKeyPem key, GenerateRecoveryKey());
  KGR_RETURN_IF_ERROR(
      fs.WriteFileAtomic(private_file, key.private_pem.span(), 0600));
  Status st = fs.WriteFileAtomic(public_file, AsBytes(key.public_pem), 0644);
  if (!st.ok()) {
    (void)fs.Remove(private_file);
    return st;
  }
  std::printf(
      "recovery key: %s (keep it offline) and %s (for "
      "backup_recovery_public)\n",
      private_file.c_str(), public_file.c_str());
  return OkStatus();
}

Status KsBackupNow(const KsOptions& o, const std::string& out_file) {
  if (out_file.empty()) return InvalidArgumentError("backup needs --out FILE");
  if (o.backup.recovery_public_file.empty()) {
    return InvalidArgumentError(
        "backup needs --backup-recovery-public FILE (or "
        "backup_recovery_public)");
  }
  auto pem = DefaultFileSystem()->ReadFile(o.backup.recovery_public_file);
  if (!pem.ok()) {
    return InvalidArgumentError("recovery public key " +
                                o.backup.recovery_public_file + ": " +
                                pem.status().message());
  }
  KGR_ASSIGN_OR_RETURN(
      Bytes pub, ParseRecoveryPublicKey(*pem, o.backup.recovery_public_file));
  bool daemon_runs = false;
  Status online = BackupThroughDaemon(o, std::string(pem->begin(), pem->end()),
                                      out_file, &daemon_runs);
  if (daemon_runs) return online;
  // No daemon: the stores and the TPM ourselves.
  KGR_ASSIGN_OR_RETURN(auto lock, DirLock::ForStateDir(o.daemon.state_dir));
  KGR_ASSIGN_OR_RETURN(auto tpm, OpenTpmFor(o.daemon));
  KGR_ASSIGN_OR_RETURN(OwnData own, LoadOwnData(*tpm));
  if (own.identity.role != Role::kKeyServer) {
    return FailedPreconditionError("this TPM holds an N node's identity");
  }
  // On etcd: node_desc read from etcd and opened with the domain key.
  KGR_ASSIGN_OR_RETURN(KsStores st, OpenKsState(o, own));
  KGR_ASSIGN_OR_RETURN(nlohmann::json j,
                       WriteBackupFile(own, st.state->nodes(), pub, out_file));
  return PrintWritten(j, out_file);
}

Status KsRestore(const KsOptions& o, const std::string& backup_file,
                 const std::string& recovery_key_file) {
  if (backup_file.empty() || recovery_key_file.empty()) {
    return InvalidArgumentError(
        "restore needs --backup FILE and --recovery-key FILE");
  }
  FileSystem& fs = *DefaultFileSystem();
  auto key_pem = fs.ReadFile(recovery_key_file);
  if (!key_pem.ok()) {
    return InvalidArgumentError("recovery key " + recovery_key_file + ": " +
                                key_pem.status().message());
  }
  SecretBytes pem(*key_pem);
  std::fill(key_pem->begin(), key_pem->end(), 0);
  KGR_ASSIGN_OR_RETURN(SecretBytes key,
                       ParseRecoveryPrivateKey(pem.span(), recovery_key_file));
  auto file = fs.ReadFile(backup_file);
  if (!file.ok()) {
    return InvalidArgumentError("backup " + backup_file + ": " +
                                file.status().message());
  }
  auto backup = OpenKsBackup(*file, key);
  if (!backup.ok()) {
    return Status(backup.status().code(),
                  backup_file + ": " + backup.status().message());
  }
  KGR_ASSIGN_OR_RETURN(auto lock, DirLock::ForStateDir(o.daemon.state_dir));
  KGR_ASSIGN_OR_RETURN(auto tpm, OpenTpmFor(o.daemon));
  const uint64_t now_us = SystemClock()->NowUnixMicros();
  if (o.state_url.empty()) {
    KGR_RETURN_IF_ERROR(
        RestoreKsBackup(*tpm, fs, *backup, o.daemon.state_dir, now_us));
  } else {
    KGR_RETURN_IF_ERROR(RestoreKsBackupToEtcd(o, *tpm, *backup, now_us));
  }
  // No AC request from before the restore counts again either.
  const std::string ac_floor = AcCounterPath(o.daemon.state_dir);
  if (Status st = SaveCounter(fs, ac_floor, now_us); !st.ok()) {
    return DataLossError("restored, but " + ac_floor + " was not written (" +
                         st.message() + "): write " + std::to_string(now_us) +
                         " into it before kgr-ks run");
  }
  std::printf(
      "restored key server %s: %zu nodes, backup of %llu (unix ms); start "
      "kgr-ks run\n",
      FormatNodeId(backup->own.identity.n_id).c_str(), backup->nodes.size(),
      static_cast<unsigned long long>(backup->created_unix_ms));
  return OkStatus();
}

}  // namespace kgr
