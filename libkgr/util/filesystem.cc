// POSIX FileSystem, FileSystem::WriteFileAtomic and DirName.
#include "kgr/filesystem.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <utility>

namespace kgr {
namespace {

// The one place where errno becomes a Status.
Status ErrnoStatus(std::string_view op, const std::string& path, int err) {
  std::string msg(op);
  msg += " ";
  msg += path;
  msg += ": ";
  msg += std::strerror(err);
  switch (err) {
    case ENOENT:
      return NotFoundError(std::move(msg));
    case ENOSPC:
    case EDQUOT:
      return ResourceExhaustedError(std::move(msg));
    default:
      return InternalError(std::move(msg));
  }
}

// Retries close(2) never (Linux frees the fd even on EINTR).
Status CloseFd(int fd, const std::string& path) {
  if (::close(fd) != 0 && errno != EINTR)
    return ErrnoStatus("close", path, errno);
  return OkStatus();
}

// open(2) with O_CLOEXEC, retried on EINTR.
StatusOr<int> OpenFd(const std::string& path, int flags, int mode = 0) {
  int fd;
  do {
    fd = ::open(path.c_str(), flags | O_CLOEXEC, static_cast<mode_t>(mode));
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) return ErrnoStatus("open", path, errno);
  return fd;
}

// fdatasync(2) of an open file.
Status SyncFd(int fd, const std::string& path) {
  if (fd < 0) return FailedPreconditionError("sync of closed " + path);
  while (::fdatasync(fd) != 0) {
    if (errno != EINTR) return ErrnoStatus("fdatasync", path, errno);
  }
  return OkStatus();
}

// Closes *fd unless already closed; *fd is -1 afterwards.
Status CloseOnce(int* fd, const std::string& path) {
  if (*fd < 0) return OkStatus();
  int f = *fd;
  *fd = -1;
  return CloseFd(f, path);
}

class PosixWritableFile final : public WritableFile {
 public:
  PosixWritableFile(int fd, std::string path)
      : fd_(fd), path_(std::move(path)) {}
  ~PosixWritableFile() override {
    if (fd_ >= 0) (void)::close(fd_);
  }

  Status Append(std::span<const uint8_t> data) override {
    if (fd_ < 0) return FailedPreconditionError("append to closed " + path_);
    while (!data.empty()) {
      ssize_t n = ::write(fd_, data.data(), data.size());
      if (n < 0) {
        if (errno == EINTR) continue;
        return ErrnoStatus("write", path_, errno);
      }
      data = data.subspan(static_cast<size_t>(n));
    }
    return OkStatus();
  }

  Status Sync() override { return SyncFd(fd_, path_); }
  Status Close() override { return CloseOnce(&fd_, path_); }

 private:
  int fd_;
  std::string path_;
};

class PosixRandomWriteFile final : public RandomWriteFile {
 public:
  PosixRandomWriteFile(int fd, std::string path)
      : fd_(fd), path_(std::move(path)) {}
  ~PosixRandomWriteFile() override {
    if (fd_ >= 0) (void)::close(fd_);
  }

  Status WriteAt(uint64_t offset, std::span<const uint8_t> data) override {
    if (fd_ < 0) return FailedPreconditionError("write to closed " + path_);
    while (!data.empty()) {
      ssize_t n =
          ::pwrite(fd_, data.data(), data.size(), static_cast<off_t>(offset));
      if (n < 0) {
        if (errno == EINTR) continue;
        return ErrnoStatus("pwrite", path_, errno);
      }
      data = data.subspan(static_cast<size_t>(n));
      offset += static_cast<uint64_t>(n);
    }
    return OkStatus();
  }

  Status Sync() override { return SyncFd(fd_, path_); }
  Status Close() override { return CloseOnce(&fd_, path_); }

 private:
  int fd_;
  std::string path_;
};

class PosixFileSystem final : public FileSystem {
 public:
  StatusOr<Bytes> ReadFile(const std::string& path) override {
    KGR_ASSIGN_OR_RETURN(int fd, OpenFd(path, O_RDONLY));
    Bytes out;
    struct stat st;
    if (::fstat(fd, &st) == 0 && st.st_size > 0) {
      out.reserve(static_cast<size_t>(st.st_size));
    }
    uint8_t buf[65536];
    for (;;) {
      ssize_t n = ::read(fd, buf, sizeof(buf));
      if (n < 0) {
        if (errno == EINTR) continue;
        Status s = ErrnoStatus("read", path, errno);
        (void)::close(fd);
        return s;
      }
      if (n == 0) break;
      out.insert(out.end(), buf, buf + n);
    }
    (void)::close(fd);
    return out;
  }

  StatusOr<std::unique_ptr<WritableFile>> NewWritableFile(
      const std::string& path, int mode) override {
    return OpenForWrite(path, O_TRUNC, mode, /*force_mode=*/true);
  }

  StatusOr<std::unique_ptr<WritableFile>> NewAppendableFile(
      const std::string& path, int mode) override {
    return OpenForWrite(path, O_APPEND, mode, /*force_mode=*/false);
  }

  StatusOr<std::unique_ptr<RandomWriteFile>> NewRandomWriteFile(
      const std::string& path, int mode) override {
    KGR_ASSIGN_OR_RETURN(int fd, OpenFd(path, O_WRONLY | O_CREAT, mode));
    return std::unique_ptr<RandomWriteFile>(new PosixRandomWriteFile(fd, path));
  }

  Status Rename(const std::string& from, const std::string& to) override {
    if (::rename(from.c_str(), to.c_str()) != 0) {
      return ErrnoStatus("rename", from + " -> " + to, errno);
    }
    return OkStatus();
  }

  Status SyncDir(const std::string& dir) override {
    KGR_ASSIGN_OR_RETURN(int fd, OpenFd(dir, O_RDONLY | O_DIRECTORY));
    Status s;
    while (::fsync(fd) != 0) {
      if (errno != EINTR) {
        s = ErrnoStatus("fsync", dir, errno);
        break;
      }
    }
    Status c = CloseFd(fd, dir);
    return s.ok() ? c : s;
  }

  Status Remove(const std::string& path) override {
    if (::unlink(path.c_str()) != 0) return ErrnoStatus("unlink", path, errno);
    return OkStatus();
  }

  StatusOr<std::vector<std::string>> ListDir(const std::string& dir) override {
    DIR* d = ::opendir(dir.c_str());
    if (d == nullptr) return ErrnoStatus("opendir", dir, errno);
    std::vector<std::string> names;
    errno = 0;
    while (const struct dirent* e = ::readdir(d)) {
      std::string name = e->d_name;
      if (name != "." && name != "..") names.push_back(std::move(name));
    }
    Status st = errno != 0 ? ErrnoStatus("readdir", dir, errno) : OkStatus();
    (void)::closedir(d);
    KGR_RETURN_IF_ERROR(st);
    std::sort(names.begin(), names.end());
    return names;
  }

  Status CreateDir(const std::string& dir, int mode) override {
    if (dir.empty()) return InvalidArgumentError("CreateDir: empty path");
    // mkdir -p: create every missing prefix, parents first.
    for (size_t pos = dir.find('/', 1);; pos = dir.find('/', pos + 1)) {
      std::string prefix = dir.substr(0, pos);
      if (!prefix.empty() &&
          ::mkdir(prefix.c_str(), static_cast<mode_t>(mode)) != 0) {
        int err = errno;
        struct stat st;
        if (err != EEXIST) return ErrnoStatus("mkdir", prefix, err);
        if (::stat(prefix.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
          return ErrnoStatus("mkdir", prefix, ENOTDIR);
        }
      }
      if (pos == std::string::npos) break;
    }
    return OkStatus();
  }

  bool Exists(const std::string& path) override {
    struct stat st;
    return ::stat(path.c_str(), &st) == 0;
  }

 private:
  StatusOr<std::unique_ptr<WritableFile>> OpenForWrite(const std::string& path,
                                                       int extra_flags,
                                                       int mode,
                                                       bool force_mode) {
    KGR_ASSIGN_OR_RETURN(int fd,
                         OpenFd(path, O_WRONLY | O_CREAT | extra_flags, mode));
    // O_CREAT's mode does not apply to an existing file: a truncated file
    // gets exactly `mode` so that rewritten secrets never stay world-readable.
    if (force_mode && ::fchmod(fd, static_cast<mode_t>(mode)) != 0) {
      Status s = ErrnoStatus("fchmod", path, errno);
      (void)::close(fd);
      return s;
    }
    return std::unique_ptr<WritableFile>(new PosixWritableFile(fd, path));
  }
};

}  // namespace

Status FileSystem::WriteFileAtomic(const std::string& path,
                                   std::span<const uint8_t> data, int mode) {
  const std::string tmp = path + ".tmp";
  auto write_tmp = [&]() -> Status {
    KGR_ASSIGN_OR_RETURN(std::unique_ptr<WritableFile> f,
                         NewWritableFile(tmp, mode));
    Status s = f->Append(data);
    if (s.ok()) s = f->Sync();
    Status c = f->Close();
    return s.ok() ? c : s;
  };
  Status s = write_tmp();
  if (s.ok()) s = Rename(tmp, path);
  if (!s.ok()) {
    (void)Remove(tmp);  // best effort; a leftover .tmp is harmless
    return s;
  }
  // After the rename `path` holds the new content; only its durability
  // depends on the directory sync.
  return SyncDir(DirName(path));
}

FileSystem* DefaultFileSystem() {
  static FileSystem* const fs = new PosixFileSystem();
  return fs;
}

std::string DirName(const std::string& path) {
  size_t end = path.size();
  while (end > 1 && path[end - 1] == '/') --end;  // "a/b/" is "a/b"
  size_t slash = path.rfind('/', end - (end > 0 ? 1 : 0));
  if (end == 0 || slash == std::string::npos) return ".";
  while (slash > 0 && path[slash - 1] == '/') --slash;  // "a//b"
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

}  // namespace kgr
