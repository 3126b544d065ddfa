#include "testing/fake_filesystem.h"

#include <algorithm>
#include <random>
#include <utility>

namespace kgr::testing {

// What File and RandomFile share: the open inode, its liveness, Sync and
// Close. Methods lock the file system.
class FakeFileSystem::Handle {
 public:
  Handle(FakeFileSystem* fs, InodePtr inode, std::string path, uint64_t epoch)
      : fs_(fs),
        inode_(std::move(inode)),
        path_(std::move(path)),
        epoch_(epoch) {}

  Status Write(std::optional<size_t> offset, std::span<const uint8_t> data) {
    std::lock_guard<std::mutex> l(fs_->mu_);
    KGR_RETURN_IF_ERROR(CheckUsableLocked());
    KGR_RETURN_IF_ERROR(fs_->CheckFaultLocked(Op::kAppend));
    return fs_->WriteLocked(inode_, offset.value_or(inode_->data.size()), data);
  }

  Status Sync() {
    std::lock_guard<std::mutex> l(fs_->mu_);
    KGR_RETURN_IF_ERROR(CheckUsableLocked());
    KGR_RETURN_IF_ERROR(fs_->CheckFaultLocked(Op::kSync));
    inode_->durable = inode_->data;
    inode_->unsynced.clear();
    inode_->truncated = false;
    return OkStatus();
  }

  Status Close() {
    std::lock_guard<std::mutex> l(fs_->mu_);
    closed_ = true;
    return OkStatus();
  }

 private:
  Status CheckUsableLocked() const {
    if (closed_) return FailedPreconditionError("closed file " + path_);
    if (epoch_ != fs_->epoch_)
      return UnavailableError("file from before crash");
    return OkStatus();
  }

  FakeFileSystem* fs_;
  InodePtr inode_;
  std::string path_;
  uint64_t epoch_;
  bool closed_ = false;
};

class FakeFileSystem::File final : public WritableFile {
 public:
  explicit File(Handle h) : h_(std::move(h)) {}
  Status Append(std::span<const uint8_t> data) override {
    return h_.Write(std::nullopt, data);
  }
  Status Sync() override { return h_.Sync(); }
  Status Close() override { return h_.Close(); }

 private:
  Handle h_;
};

class FakeFileSystem::RandomFile final : public RandomWriteFile {
 public:
  explicit RandomFile(Handle h) : h_(std::move(h)) {}
  Status WriteAt(uint64_t offset, std::span<const uint8_t> data) override {
    return h_.Write(static_cast<size_t>(offset), data);
  }
  Status Sync() override { return h_.Sync(); }
  Status Close() override { return h_.Close(); }

 private:
  Handle h_;
};

FakeFileSystem::~FakeFileSystem() = default;

Status FakeFileSystem::CheckFaultLocked(Op op) {
  if (op != Op::kRead) {
    ++mutations_;
    if (mutations_left_.has_value()) {
      if (*mutations_left_ == 0) return UnavailableError("simulated crash");
      --*mutations_left_;
    }
  }
  for (auto it = faults_.begin(); it != faults_.end(); ++it) {
    if (it->op != op) continue;
    if (--it->remaining == 0) {
      Status s = it->status;
      faults_.erase(it);
      return s;
    }
  }
  ++counts_[op];
  return OkStatus();
}

size_t FakeFileSystem::TotalBytesLocked() const {
  std::set<const Inode*> seen;
  size_t total = 0;
  for (const auto* m : {&names_, &durable_}) {
    for (const auto& [name, inode] : *m) {
      if (seen.insert(inode.get()).second) {
        total += std::max(inode->data.size(), inode->durable.size());
      }
    }
  }
  return total;
}

Status FakeFileSystem::WriteLocked(const InodePtr& inode, size_t offset,
                                   std::span<const uint8_t> data) {
  size_t fits = data.size();
  if (capacity_.has_value()) {
    size_t used = TotalBytesLocked();
    // Growth beyond the larger of the current and durable copies costs
    // space; overwriting does not.
    size_t room = *capacity_ > used ? *capacity_ - used : 0;
    size_t allocated = std::max(inode->data.size(), inode->durable.size());
    size_t free_inside = allocated > offset ? allocated - offset : 0;
    fits = std::min(fits, free_inside + room);
  }
  if (fits > 0) {
    if (inode->data.size() < offset + fits) inode->data.resize(offset + fits);
    std::copy(data.begin(), data.begin() + fits, inode->data.begin() + offset);
    inode->unsynced.emplace_back(offset,
                                 Bytes(data.begin(), data.begin() + fits));
  }
  if (fits < data.size()) return ResourceExhaustedError("write: disk full");
  return OkStatus();
}

StatusOr<Bytes> FakeFileSystem::ReadFile(const std::string& path) {
  std::lock_guard<std::mutex> l(mu_);
  KGR_RETURN_IF_ERROR(CheckFaultLocked(Op::kRead));
  auto it = names_.find(path);
  if (it == names_.end())
    return NotFoundError("open " + path + ": no such file");
  return it->second->data;
}

StatusOr<FakeFileSystem::InodePtr> FakeFileSystem::OpenLocked(
    const std::string& path, int mode, bool truncate) {
  KGR_RETURN_IF_ERROR(CheckFaultLocked(Op::kOpen));
  InodePtr& inode = names_[path];
  if (!inode) {
    inode = std::make_shared<Inode>();
    inode->mode = mode;
  } else if (truncate) {
    inode->data.clear();
    inode->unsynced.clear();
    inode->truncated = true;
    inode->mode = mode;
  }
  return inode;
}

StatusOr<std::unique_ptr<WritableFile>> FakeFileSystem::NewWritableFile(
    const std::string& path, int mode) {
  std::lock_guard<std::mutex> l(mu_);
  KGR_ASSIGN_OR_RETURN(InodePtr inode, OpenLocked(path, mode, true));
  return std::unique_ptr<WritableFile>(
      new File(Handle(this, std::move(inode), path, epoch_)));
}

StatusOr<std::unique_ptr<WritableFile>> FakeFileSystem::NewAppendableFile(
    const std::string& path, int mode) {
  std::lock_guard<std::mutex> l(mu_);
  KGR_ASSIGN_OR_RETURN(InodePtr inode, OpenLocked(path, mode, false));
  return std::unique_ptr<WritableFile>(
      new File(Handle(this, std::move(inode), path, epoch_)));
}

StatusOr<std::unique_ptr<RandomWriteFile>> FakeFileSystem::NewRandomWriteFile(
    const std::string& path, int mode) {
  std::lock_guard<std::mutex> l(mu_);
  KGR_ASSIGN_OR_RETURN(InodePtr inode, OpenLocked(path, mode, false));
  return std::unique_ptr<RandomWriteFile>(
      new RandomFile(Handle(this, std::move(inode), path, epoch_)));
}

Status FakeFileSystem::Rename(const std::string& from, const std::string& to) {
  std::lock_guard<std::mutex> l(mu_);
  KGR_RETURN_IF_ERROR(CheckFaultLocked(Op::kRename));
  auto it = names_.find(from);
  if (it == names_.end())
    return NotFoundError("rename " + from + ": no such file");
  InodePtr inode = it->second;
  names_.erase(it);
  names_[to] = std::move(inode);
  return OkStatus();
}

Status FakeFileSystem::SyncDir(const std::string& dir) {
  std::lock_guard<std::mutex> l(mu_);
  KGR_RETURN_IF_ERROR(CheckFaultLocked(Op::kSyncDir));
  for (auto it = durable_.begin(); it != durable_.end();) {
    if (DirName(it->first) == dir && names_.count(it->first) == 0) {
      it = durable_.erase(it);
    } else {
      ++it;
    }
  }
  for (const auto& [name, inode] : names_) {
    if (DirName(name) == dir) durable_[name] = inode;
  }
  return OkStatus();
}

Status FakeFileSystem::Remove(const std::string& path) {
  std::lock_guard<std::mutex> l(mu_);
  KGR_RETURN_IF_ERROR(CheckFaultLocked(Op::kRemove));
  if (names_.erase(path) == 0)
    return NotFoundError("unlink " + path + ": no such file");
  return OkStatus();
}

Status FakeFileSystem::CreateDir(const std::string& dir, int /*mode*/) {
  std::lock_guard<std::mutex> l(mu_);
  KGR_RETURN_IF_ERROR(CheckFaultLocked(Op::kCreateDir));
  dirs_.insert(dir);
  return OkStatus();
}

StatusOr<std::vector<std::string>> FakeFileSystem::ListDir(
    const std::string& dir) {
  std::lock_guard<std::mutex> l(mu_);
  std::set<std::string> names;
  bool exists = dirs_.count(dir) != 0;
  for (const auto& [name, inode] : names_) {
    if (DirName(name) != dir) continue;
    exists = true;
    names.insert(name.substr(dir.size() + 1));
  }
  for (const std::string& d : dirs_) {
    if (d != dir && DirName(d) == dir) names.insert(d.substr(dir.size() + 1));
  }
  if (!exists) return NotFoundError("opendir " + dir + ": no such directory");
  return std::vector<std::string>(names.begin(), names.end());
}

bool FakeFileSystem::Exists(const std::string& path) {
  std::lock_guard<std::mutex> l(mu_);
  return names_.count(path) != 0 || dirs_.count(path) != 0;
}

void FakeFileSystem::Crash(const CrashOptions& options) {
  std::lock_guard<std::mutex> l(mu_);
  ++epoch_;
  if (options.keep_dir_changes) {
    durable_ = names_;
  } else {
    names_ = durable_;
  }
  std::mt19937 rng(options.random_seed.value_or(0));
  std::set<Inode*> done;
  for (auto& [name, inode] : names_) {
    if (!done.insert(inode.get()).second) continue;
    Bytes next = inode->durable;
    if (!inode->truncated) {
      size_t unsynced = 0;
      for (const auto& [offset, bytes] : inode->unsynced) {
        unsynced += bytes.size();
      }
      size_t keep = 0;
      if (options.random_seed.has_value()) {
        keep = std::uniform_int_distribution<size_t>(0, unsynced)(rng);
      } else {
        keep = std::min(unsynced, options.keep_unsynced_bytes.value_or(0));
      }
      // The first `keep` bytes written survive, in write order.
      for (const auto& [offset, bytes] : inode->unsynced) {
        if (keep == 0) break;
        size_t n = std::min(keep, bytes.size());
        keep -= n;
        if (next.size() < offset + n) next.resize(offset + n);
        for (size_t i = 0; i < n; ++i) {
          next[offset + i] = options.garble_kept ? bytes[i] ^ 0x5a : bytes[i];
        }
      }
    }
    inode->data = next;
    inode->durable = std::move(next);
    inode->unsynced.clear();
    inode->truncated = false;
  }
  faults_.clear();
  mutations_left_.reset();
  capacity_.reset();
}

void FakeFileSystem::FailNth(Op op, int n, Status status) {
  std::lock_guard<std::mutex> l(mu_);
  faults_.push_back({op, n, std::move(status)});
}

void FakeFileSystem::FailAfterMutations(int n) {
  std::lock_guard<std::mutex> l(mu_);
  mutations_left_ = n;
}

void FakeFileSystem::SetCapacity(std::optional<size_t> bytes) {
  std::lock_guard<std::mutex> l(mu_);
  capacity_ = bytes;
}

void FakeFileSystem::ClearFaults() {
  std::lock_guard<std::mutex> l(mu_);
  faults_.clear();
  mutations_left_.reset();
  capacity_.reset();
}

int FakeFileSystem::Count(Op op) const {
  std::lock_guard<std::mutex> l(mu_);
  auto it = counts_.find(op);
  return it == counts_.end() ? 0 : it->second;
}

int FakeFileSystem::mutations() const {
  std::lock_guard<std::mutex> l(mu_);
  return mutations_;
}

int FakeFileSystem::FileMode(const std::string& path) const {
  std::lock_guard<std::mutex> l(mu_);
  auto it = names_.find(path);
  return it == names_.end() ? -1 : it->second->mode;
}

void FakeFileSystem::SetContents(const std::string& path, Bytes data) {
  std::lock_guard<std::mutex> l(mu_);
  InodePtr& inode = names_[path];
  if (!inode) inode = std::make_shared<Inode>();
  inode->data = data;
  inode->durable = std::move(data);
  inode->unsynced.clear();
  inode->truncated = false;
  durable_[path] = inode;
}

std::vector<std::string> FakeFileSystem::ListFiles() const {
  std::lock_guard<std::mutex> l(mu_);
  std::vector<std::string> out;
  for (const auto& [name, inode] : names_) out.push_back(name);
  return out;
}

}  // namespace kgr::testing
