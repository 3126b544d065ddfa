// FileSystem: the narrow file interface every store in libkgr writes through
// (after LevelDB's Env), so that tests can inject faults and simulate crashes.
//
// Implementations must be thread-safe for calls on different paths.
// Errors: NOT_FOUND for a missing file, RESOURCE_EXHAUSTED for a full disk
// (ENOSPC/EDQUOT), INTERNAL for any other OS error (message names the path
// and the errno text).
#ifndef KGR_FILESYSTEM_H_
#define KGR_FILESYSTEM_H_

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "kgr/bytes.h"
#include "kgr/status.h"

namespace kgr {

// A file open for writing. Not thread-safe. Data is durable only after Sync().
class WritableFile {
 public:
  virtual ~WritableFile() = default;
  virtual Status Append(std::span<const uint8_t> data) = 0;
  // fdatasync(2) or equivalent.
  virtual Status Sync() = 0;
  virtual Status Close() = 0;
};

// A file written at explicit offsets (pwrite(2)), for a journal whose space
// is preallocated: overwriting blocks that are already allocated changes no
// metadata, so Sync() writes only the data. Not thread-safe. Data is durable
// only after Sync().
class RandomWriteFile {
 public:
  virtual ~RandomWriteFile() = default;
  // Writes all of `data` at `offset`; the file grows if it ends before.
  virtual Status WriteAt(uint64_t offset, std::span<const uint8_t> data) = 0;
  // fdatasync(2) or equivalent.
  virtual Status Sync() = 0;
  virtual Status Close() = 0;
};

class FileSystem {
 public:
  virtual ~FileSystem() = default;

  virtual StatusOr<Bytes> ReadFile(const std::string& path) = 0;
  // Creates or truncates `path` with permission `mode` (e.g. 0600).
  virtual StatusOr<std::unique_ptr<WritableFile>> NewWritableFile(
      const std::string& path, int mode) = 0;
  // Opens `path` for appending, creating it with `mode` if missing.
  virtual StatusOr<std::unique_ptr<WritableFile>> NewAppendableFile(
      const std::string& path, int mode) = 0;
  // Opens `path` for writing at offsets, keeping its content; creates it
  // with `mode` if missing.
  virtual StatusOr<std::unique_ptr<RandomWriteFile>> NewRandomWriteFile(
      const std::string& path, int mode) = 0;
  // Atomic rename(2); replaces `to`.
  virtual Status Rename(const std::string& from, const std::string& to) = 0;
  // Makes directory entries (creates, renames, removals) in `dir` durable.
  virtual Status SyncDir(const std::string& dir) = 0;
  virtual Status Remove(const std::string& path) = 0;
  // Creates `dir` (and parents) with `mode` if missing.
  virtual Status CreateDir(const std::string& dir, int mode) = 0;
  virtual bool Exists(const std::string& path) = 0;
  // Names (not paths) of the entries of `dir`, sorted, without "." and "..".
  // NOT_FOUND if `dir` does not exist.
  virtual StatusOr<std::vector<std::string>> ListDir(const std::string& dir) = 0;

  // Replaces `path` atomically and durably: writes `path`.tmp, syncs it,
  // renames it over `path`, syncs the directory. On any failure the previous
  // content of `path` is intact and the temporary is removed.
  Status WriteFileAtomic(const std::string& path, std::span<const uint8_t> data,
                         int mode);
};

// The real POSIX file system. Process-wide singleton; never deleted.
FileSystem* DefaultFileSystem();

// Directory part of `path` ("." when it has none).
std::string DirName(const std::string& path);

}  // namespace kgr

#endif  // KGR_FILESYSTEM_H_
