// Continuous backups of a running key server (docs/operations.md): a new
// backup file in a directory after every node_desc change a restore must
// not lose, at most one per interval, keeping the newest few.
// Thread safety: none; call from the KeyServer's event loop.
#ifndef KGR_KS_BACKUP_SCHEDULE_H_
#define KGR_KS_BACKUP_SCHEDULE_H_

#include <cstdint>
#include <optional>
#include <string>

#include "kgr/ks_backup.h"

namespace kgr {

struct BackupScheduleOptions {
  std::string dir;        // created (0700) if missing
  Bytes recovery_public;  // 32 raw bytes
  uint64_t interval_ms = 10'000;
  size_t keep = 20;  // newest files kept; older kgr-ks-*.kgrbak are removed
};

class BackupSchedule {
 public:
  BackupSchedule(FileSystem& fs, BackupScheduleOptions options)
      : fs_(fs), options_(std::move(options)) {}

  // Writes a backup if none was written by this object yet, or if `changes`
  // (KeyServerStats::node_desc_changes) differs from the last backup's and
  // the interval has passed. A failure is returned (and retried at the next
  // call); the previous backups stay.
  Status Tick(const OwnData& own, const NodeDescStore& nodes, uint64_t changes,
              uint64_t now_unix_ms);
  // The path of the newest backup written, if any.
  const std::optional<std::string>& last_path() const { return last_path_; }
  // The `changes` value the newest backup was written at, if any.
  const std::optional<uint64_t>& written_changes() const {
    return written_changes_;
  }

 private:
  Status Write(const OwnData& own, const NodeDescStore& nodes,
               uint64_t now_unix_ms);
  Status Prune();

  FileSystem& fs_;
  const BackupScheduleOptions options_;
  std::optional<uint64_t> written_changes_;
  uint64_t written_at_ms_ = 0;
  std::optional<std::string> last_path_;
};

// "kgr-ks-<unix ms, 13 digits>.kgrbak": sorts by time.
std::string BackupFileName(uint64_t unix_ms);

}  // namespace kgr

#endif  // KGR_KS_BACKUP_SCHEDULE_H_
