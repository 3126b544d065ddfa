#include "bench/counting_fs.h"

namespace kgr::bench {

class CountingFile : public WritableFile {
 public:
  CountingFile(std::unique_ptr<WritableFile> inner, CountingFileSystem& fs)
      : inner_(std::move(inner)), fs_(fs) {}
  Status Append(std::span<const uint8_t> data) override {
    fs_.CountWrite(data);
    return inner_->Append(data);
  }
  Status Sync() override {
    fs_.CountSync();
    return inner_->Sync();
  }
  Status Close() override { return inner_->Close(); }

 private:
  std::unique_ptr<WritableFile> inner_;
  CountingFileSystem& fs_;
};

class CountingRandomFile : public RandomWriteFile {
 public:
  CountingRandomFile(std::unique_ptr<RandomWriteFile> inner,
                     CountingFileSystem& fs)
      : inner_(std::move(inner)), fs_(fs) {}
  Status WriteAt(uint64_t offset, std::span<const uint8_t> data) override {
    fs_.CountWrite(data);
    return inner_->WriteAt(offset, data);
  }
  Status Sync() override {
    fs_.CountSync();
    return inner_->Sync();
  }
  Status Close() override { return inner_->Close(); }

 private:
  std::unique_ptr<RandomWriteFile> inner_;
  CountingFileSystem& fs_;
};

CountingFileSystem::Shard& CountingFileSystem::MyShard() {
  static std::atomic<size_t> next{0};
  thread_local size_t index = next.fetch_add(1) % kShards;
  return shards_[index];
}

void CountingFileSystem::CountWrite(std::span<const uint8_t> data) {
  size_t end = data.size();
  while (end > 0 && data[end - 1] == 0) --end;
  Shard& s = MyShard();
  s.appends.fetch_add(1, std::memory_order_relaxed);
  s.append_bytes.fetch_add(end, std::memory_order_relaxed);
  s.zero_bytes.fetch_add(data.size() - end, std::memory_order_relaxed);
}

void CountingFileSystem::CountSync() {
  MyShard().file_syncs.fetch_add(1, std::memory_order_relaxed);
}

FsCounts CountingFileSystem::counts() const {
  FsCounts c;
  for (const Shard& s : shards_) {
    c.file_syncs += s.file_syncs.load();
    c.dir_syncs += s.dir_syncs.load();
    c.appends += s.appends.load();
    c.append_bytes += s.append_bytes.load();
    c.zero_bytes += s.zero_bytes.load();
  }
  return c;
}

StatusOr<Bytes> CountingFileSystem::ReadFile(const std::string& path) {
  return base_.ReadFile(path);
}

StatusOr<std::unique_ptr<WritableFile>> CountingFileSystem::NewWritableFile(
    const std::string& path, int mode) {
  KGR_ASSIGN_OR_RETURN(auto f, base_.NewWritableFile(path, mode));
  return std::unique_ptr<WritableFile>(new CountingFile(std::move(f), *this));
}

StatusOr<std::unique_ptr<WritableFile>> CountingFileSystem::NewAppendableFile(
    const std::string& path, int mode) {
  KGR_ASSIGN_OR_RETURN(auto f, base_.NewAppendableFile(path, mode));
  return std::unique_ptr<WritableFile>(new CountingFile(std::move(f), *this));
}

StatusOr<std::unique_ptr<RandomWriteFile>>
CountingFileSystem::NewRandomWriteFile(const std::string& path, int mode) {
  KGR_ASSIGN_OR_RETURN(auto f, base_.NewRandomWriteFile(path, mode));
  return std::unique_ptr<RandomWriteFile>(
      new CountingRandomFile(std::move(f), *this));
}

Status CountingFileSystem::Rename(const std::string& from,
                                  const std::string& to) {
  return base_.Rename(from, to);
}

Status CountingFileSystem::SyncDir(const std::string& dir) {
  MyShard().dir_syncs.fetch_add(1, std::memory_order_relaxed);
  return base_.SyncDir(dir);
}

Status CountingFileSystem::Remove(const std::string& path) {
  return base_.Remove(path);
}

Status CountingFileSystem::CreateDir(const std::string& dir, int mode) {
  return base_.CreateDir(dir, mode);
}

bool CountingFileSystem::Exists(const std::string& path) {
  return base_.Exists(path);
}

}  // namespace kgr::bench
