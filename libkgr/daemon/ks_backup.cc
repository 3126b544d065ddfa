#include "daemon/ks_backup.h"

#include <spdlog/spdlog.h>

#include "kgr/clock.h"

namespace kgr {

StatusOr<Bytes> ReadRecoveryPublic(const std::string& file) {
  auto pem = DefaultFileSystem()->ReadFile(file);
  if (!pem.ok()) {
    return InvalidArgumentError("recovery public key " + file + ": " +
                                pem.status().message());
  }
  return ParseRecoveryPublicKey(*pem, file);
}

OwnData CloneOwnData(const OwnData& own) {
  OwnData c;
  c.identity = own.identity;
  c.nk = own.nk.Clone();
  c.ntag = own.ntag.Clone();
  if (own.ks.has_value()) {
    c.ks = KsKeysBlob{own.ks->nksk.Clone(), own.ks->version, own.ks->ks_topic1,
                      own.ks->ks_n_id};
  }
  return c;
}

namespace {

template <typename Nodes>
StatusOr<nlohmann::json> WriteBackupOf(const OwnData& own, const Nodes& nodes,
                                       std::span<const uint8_t> recovery_public,
                                       const std::string& path) {
  KGR_ASSIGN_OR_RETURN(Bytes file,
                       SealKsBackup(own, nodes, recovery_public,
                                    SystemClock()->NowUnixMillis()));
  KGR_RETURN_IF_ERROR(DefaultFileSystem()->WriteFileAtomic(path, file, 0600));
  return nlohmann::json{
      {"path", path}, {"nodes", nodes.size()}, {"bytes", file.size()}};
}

}  // namespace

StatusOr<nlohmann::json> WriteBackupFile(
    const OwnData& own, const NodeDescStore& nodes,
    std::span<const uint8_t> recovery_public, const std::string& path) {
  return WriteBackupOf(own, nodes, recovery_public, path);
}

StatusOr<nlohmann::json> WriteBackupFile(
    const OwnData& own, const NodeDescTable& nodes,
    std::span<const uint8_t> recovery_public, const std::string& path) {
  return WriteBackupOf(own, nodes, recovery_public, path);
}

StatusOr<std::unique_ptr<KsBackups>> KsBackups::Create(const KsOptions& o,
                                                       const OwnData& own) {
  std::unique_ptr<KsBackups> b(new KsBackups(o, CloneOwnData(own)));
  if (!o.backup.dir.empty()) {
    KGR_ASSIGN_OR_RETURN(Bytes pub,
                         ReadRecoveryPublic(o.backup.recovery_public_file));
    b->schedule_ = std::make_unique<BackupSchedule>(
        *DefaultFileSystem(),
        BackupScheduleOptions{.dir = o.backup.dir,
                              .recovery_public = std::move(pub),
                              .interval_ms = o.backup.interval_s * 1000,
                              .keep = o.backup.keep});
  }
  return b;
}

void KsBackups::Tick(const NodeDescStore& nodes, uint64_t node_desc_changes) {
  if (!schedule_) return;
  Status st = schedule_->Tick(own_, nodes, node_desc_changes,
                              SystemClock()->NowUnixMillis());
  if (st.ok()) {
    if (!last_error_.empty()) spdlog::info("ks: backups written again");
    last_error_.clear();
    return;
  }
  if (st.ToString() != last_error_) {
    spdlog::error("ks: backup into {} failed: {}", o_.backup.dir,
                  st.ToString());
  }
  last_error_ = st.ToString();
}

nlohmann::json KsBackups::OnDemand(const nlohmann::json& request,
                                   const NodeDescTable& nodes) {
  const std::string pem = request.value("recovery_public_pem", "");
  auto pub = ParseRecoveryPublicKey(AsBytes(pem), "recovery public key");
  if (!pub.ok()) return {{"ok", false}, {"error", pub.status().ToString()}};
  const std::string path = o_.daemon.state_dir + "/" +
                           BackupFileName(SystemClock()->NowUnixMillis()) +
                           ".ondemand";
  auto written = WriteBackupFile(own_, nodes, *pub, path);
  if (!written.ok()) {
    return {{"ok", false}, {"error", written.status().ToString()}};
  }
  nlohmann::json answer = *written;
  answer["ok"] = true;
  return answer;
}

nlohmann::json KsBackups::StatusJson(uint64_t node_desc_changes) const {
  if (!schedule_) return nullptr;
  return {{"dir", o_.backup.dir},
          {"last", schedule_->last_path().value_or("")},
          {"pending_changes",
           node_desc_changes - schedule_->written_changes().value_or(0)},
          {"error", last_error_}};
}

}  // namespace kgr
