// CountingFileSystem: a FileSystem decorator that counts the durable
// operations the stores make (fdatasync of files, syncs of directories,
// appends), for kgr-bench's "fsyncs per establishment".
//
// Thread-safe (atomic counters; the wrapped FileSystem must be thread-safe
// for calls on different paths, as FileSystem requires). The counters are
// sharded by thread, one cache line each, so that the node loops counting
// on both cores do not pass a shared line back and forth on every write
// (which would charge the measurement's own cost to the system measured).
#ifndef KGR_TESTS_BENCH_COUNTING_FS_H_
#define KGR_TESTS_BENCH_COUNTING_FS_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "kgr/filesystem.h"

namespace kgr::bench {

struct FsCounts {
  uint64_t file_syncs = 0;  // WritableFile::Sync (fdatasync)
  uint64_t dir_syncs = 0;   // FileSystem::SyncDir (fsync of a directory)
  uint64_t appends = 0;     // WritableFile::Append and RandomWriteFile::WriteAt
  uint64_t append_bytes = 0;  // written, but for trailing zeros:
  uint64_t zero_bytes = 0;    // journal space preallocated with zeros
  uint64_t syncs() const { return file_syncs + dir_syncs; }
};

class CountingFileSystem : public FileSystem {
 public:
  // `base` must outlive this object.
  explicit CountingFileSystem(FileSystem& base) : base_(base) {}

  FsCounts counts() const;

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
  StatusOr<std::vector<std::string>> ListDir(const std::string& dir) override {
    return base_.ListDir(dir);
  }

 private:
  friend class CountingFile;
  friend class CountingRandomFile;
  FileSystem& base_;
  struct alignas(64) Shard {
    std::atomic<uint64_t> file_syncs{0};
    std::atomic<uint64_t> dir_syncs{0};
    std::atomic<uint64_t> appends{0};
    std::atomic<uint64_t> append_bytes{0};
    std::atomic<uint64_t> zero_bytes{0};
  };
  static constexpr size_t kShards = 16;
  Shard shards_[kShards];
  Shard& MyShard();
  void CountWrite(std::span<const uint8_t> data);
  void CountSync();
};

}  // namespace kgr::bench

#endif  // KGR_TESTS_BENCH_COUNTING_FS_H_
