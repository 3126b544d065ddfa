// FakeFileSystem: an in-memory FileSystem for unit tests that models what a
// power loss can do to data that was not made durable, and injects faults.
//
// Model (POSIX semantics, strict):
//  * A file's content is durable as of its last Sync(). Bytes written
//    (appended, or written at an offset) or a truncation done after it are
//    "unsynced".
//  * A directory entry (creation, rename, removal) is durable only after
//    SyncDir() of its directory.
//  * Crash() turns the durable state into the current one: the unsynced
//    writes of a file are dropped or torn (the first N of their bytes, in
//    write order, survive, optionally garbled; an unsynced truncation drops
//    them all), and directory changes not followed by SyncDir are undone
//    (or, optionally, kept: real file systems may persist them early; stores
//    must survive both).
//  * Faults: fail the Nth call of an operation with a given Status, fail
//    every mutating call after N of them ("the process died there"), or cap
//    the total size of all files (a full disk: the part of a write that fits
//    is written, then RESOURCE_EXHAUSTED).
//
// Paths are plain strings: "d/x" lives in directory DirName("d/x") == "d".
// Directories need not be created first. Thread-safe.
#ifndef KGR_TESTING_FAKE_FILESYSTEM_H_
#define KGR_TESTING_FAKE_FILESYSTEM_H_

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "kgr/filesystem.h"

namespace kgr::testing {

class FakeFileSystem : public FileSystem {
 public:
  enum class Op {
    kOpen,    // NewWritableFile / NewAppendableFile / NewRandomWriteFile
    kAppend,  // WritableFile::Append and RandomWriteFile::WriteAt
    kSync,    // WritableFile::Sync and RandomWriteFile::Sync
    kRename,
    kSyncDir,
    kRemove,
    kCreateDir,
    kRead,  // ReadFile (not a mutating op)
  };

  struct CrashOptions {
    // How many unsynced written bytes of each file survive: none by default;
    // a value keeps min(value, unsynced) bytes (a torn write).
    std::optional<size_t> keep_unsynced_bytes;
    // If set, each file keeps a pseudo-random number of its unsynced bytes
    // drawn from this seed (overrides keep_unsynced_bytes).
    std::optional<uint32_t> random_seed;
    // Surviving unsynced bytes are XORed with 0x5a (torn sectors).
    bool garble_kept = false;
    // Keep directory changes that were not followed by SyncDir.
    bool keep_dir_changes = false;
  };

  FakeFileSystem() = default;
  ~FakeFileSystem() override;

  // FileSystem.
  StatusOr<Bytes> ReadFile(const std::string& path) override;
  StatusOr<std::unique_ptr<WritableFile>> NewWritableFile(
      const std::string& path, int mode) override;
  StatusOr<std::unique_ptr<WritableFile>> NewAppendableFile(
      const std::string& path, int mode) override;
  StatusOr<std::unique_ptr<RandomWriteFile>> NewRandomWriteFile(
      const std::string& path, int mode) override;
  Status Rename(const std::string& from, const std::string& to) override;
  Status SyncDir(const std::string& dir) override;
  Status Remove(const std::string& path) override;
  Status CreateDir(const std::string& dir, int mode) override;
  bool Exists(const std::string& path) override;
  StatusOr<std::vector<std::string>> ListDir(const std::string& dir) override;

  // Simulates a power loss (see the model above). Open WritableFiles become
  // dead: their later calls fail with UNAVAILABLE. Clears every fault.
  void Crash(const CrashOptions& options);
  void Crash() { Crash(CrashOptions()); }

  // The `n`th (1-based, counted from now) call of `op` fails with `status`.
  void FailNth(Op op, int n, Status status);
  // After `n` more mutating calls (all ops but kRead) succeed, every further
  // mutating call fails with UNAVAILABLE("simulated crash"), as if the
  // process had died; call Crash() afterwards.
  void FailAfterMutations(int n);
  // Total bytes of all current files may not exceed `bytes` (nullopt: no
  // limit). An Append that does not fit writes what fits, then fails with
  // RESOURCE_EXHAUSTED.
  void SetCapacity(std::optional<size_t> bytes);
  void ClearFaults();

  // Inspection and tampering helpers for tests.
  // Number of successful calls of `op` since construction.
  int Count(Op op) const;
  // Mutating calls made so far (successful or not).
  int mutations() const;
  // Current permission bits of `path` (-1 if missing).
  int FileMode(const std::string& path) const;
  // Replaces the content of `path` durably (creates it, mode 0600).
  void SetContents(const std::string& path, Bytes data);
  // Paths of all current files, sorted.
  std::vector<std::string> ListFiles() const;

 private:
  struct Inode {
    Bytes data;     // current content
    Bytes durable;  // content after the last Sync (or at creation)
    // Writes since the last Sync, in order: (offset, bytes).
    std::vector<std::pair<size_t, Bytes>> unsynced;
    bool truncated = false;  // truncated since the last Sync
    int mode = 0600;
  };
  using InodePtr = std::shared_ptr<Inode>;
  class Handle;
  class File;
  class RandomFile;

  // Non-OK if a fault fires for `op` (counts the call). Caller holds mu_.
  Status CheckFaultLocked(Op op);
  size_t TotalBytesLocked() const;
  // The inode of `path`, created (or truncated) as asked.
  StatusOr<InodePtr> OpenLocked(const std::string& path, int mode,
                                bool truncate);
  // Writes `data` at `offset` (the end: an append); with a capacity set,
  // writes what fits and fails with RESOURCE_EXHAUSTED.
  Status WriteLocked(const InodePtr& inode, size_t offset,
                     std::span<const uint8_t> data);

  mutable std::mutex mu_;
  std::map<std::string, InodePtr> names_;    // current directory entries
  std::map<std::string, InodePtr> durable_;  // durable directory entries
  std::set<std::string> dirs_;
  uint64_t epoch_ = 0;  // bumped by Crash(); older Files are dead

  struct Fault {
    Op op;
    int remaining;  // fires when it reaches 0
    Status status;
  };
  std::vector<Fault> faults_;
  std::optional<int> mutations_left_;
  std::optional<size_t> capacity_;
  std::map<Op, int> counts_;
  int mutations_ = 0;
};

}  // namespace kgr::testing

#endif  // KGR_TESTING_FAKE_FILESYSTEM_H_
