#include "ks/backup_schedule.h"

#include <spdlog/spdlog.h>

#include <cstdio>

namespace kgr {
namespace {

constexpr char kPrefix[] = "kgr-ks-";
constexpr char kSuffix[] = ".kgrbak";

bool IsBackupName(const std::string& name) {
  const std::string p = kPrefix, s = kSuffix;
  return name.size() > p.size() + s.size() && name.starts_with(p) &&
         name.ends_with(s);
}

}  // namespace

std::string BackupFileName(uint64_t unix_ms) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%s%013llu%s", kPrefix,
                static_cast<unsigned long long>(unix_ms), kSuffix);
  return buf;
}

Status BackupSchedule::Tick(const OwnData& own, const NodeDescStore& nodes,
                            uint64_t changes, uint64_t now_unix_ms) {
  if (written_changes_.has_value()) {
    if (*written_changes_ == changes) return OkStatus();
    if (now_unix_ms < written_at_ms_ + options_.interval_ms) return OkStatus();
  }
  KGR_RETURN_IF_ERROR(Write(own, nodes, now_unix_ms));
  written_changes_ = changes;
  written_at_ms_ = now_unix_ms;
  return OkStatus();
}

Status BackupSchedule::Write(const OwnData& own, const NodeDescStore& nodes,
                             uint64_t now_unix_ms) {
  // Never two files for one millisecond, never a name that sorts before
  // the last one (a clock stepping back).
  if (now_unix_ms <= written_at_ms_) now_unix_ms = written_at_ms_ + 1;
  KGR_ASSIGN_OR_RETURN(
      Bytes file,
      SealKsBackup(own, nodes, options_.recovery_public, now_unix_ms));
  KGR_RETURN_IF_ERROR(fs_.CreateDir(options_.dir, 0700));
  const std::string path = options_.dir + "/" + BackupFileName(now_unix_ms);
  KGR_RETURN_IF_ERROR(fs_.WriteFileAtomic(path, file, 0600));
  last_path_ = path;
  spdlog::info("ks: backup {} ({} nodes, {} bytes)", path, nodes.size(),
               file.size());
  Status pruned = Prune();
  if (!pruned.ok()) {
    spdlog::warn("ks: old backups not removed: {}", pruned.message());
  }
  return OkStatus();
}

Status BackupSchedule::Prune() {
  KGR_ASSIGN_OR_RETURN(std::vector<std::string> names,
                       fs_.ListDir(options_.dir));
  std::vector<std::string> backups;
  for (std::string& n : names) {
    if (IsBackupName(n)) backups.push_back(std::move(n));
  }
  // Sorted by name = by time; the newest `keep` stay.
  for (size_t i = 0; i + options_.keep < backups.size(); ++i) {
    KGR_RETURN_IF_ERROR(fs_.Remove(options_.dir + "/" + backups[i]));
  }
  return fs_.SyncDir(options_.dir);
}

}  // namespace kgr
