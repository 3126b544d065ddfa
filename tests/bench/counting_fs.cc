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
    fs_.file_syncs_.fetch_add(1, std::memory_order_relaxed);
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
    fs_.file_syncs_.fetch_add(1, std::memory_order_relaxed);
    return inner_->Sync();
  }
  Status Close() override { return inner_->Close(); }

 private:
  std::unique_ptr<RandomWriteFile> inner_;
  CountingFileSystem& fs_;
};

void CountingFileSystem::CountWrite(std::span<const uint8_t> data) {
  size_t end = data.size();
  while (end > 0 && data[end - 1] == 0) --end;
  appends_.fetch_add(1, std::memory_order_relaxed);
  append_bytes_.fetch_add(end, std::memory_order_relaxed);
  zero_bytes_.fetch_add(data.size() - end, std::memory_order_relaxed);
}

FsCounts CountingFileSystem::counts() const {
  FsCounts c;
  c.file_syncs = file_syncs_.load();
  c.dir_syncs = dir_syncs_.load();
  c.appends = appends_.load();
  c.append_bytes = append_bytes_.load();
  c.zero_bytes = zero_bytes_.load();
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
  dir_syncs_.fetch_add(1, std::memory_order_relaxed);
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
