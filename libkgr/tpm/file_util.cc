#include "tpm/file_util.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

namespace kgr::tpm_internal {
namespace {

Status ErrnoStatus(const std::string& op, const std::string& path, int err) {
  std::string message = op + " " + path + ": " + std::strerror(err);
  if (err == ENOENT) return NotFoundError(std::move(message));
  if (err == ENOSPC || err == EDQUOT) {
    return ResourceExhaustedError(std::move(message));
  }
  return InternalError(std::move(message));
}

std::string DirOf(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

Status SyncDir(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus("open", dir, errno);
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  if (rc != 0) return ErrnoStatus("fsync", dir, err);
  return OkStatus();
}

Status WriteAll(int fd, const std::string& path,
                std::span<const uint8_t> data) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus("write", path, errno);
    }
    done += static_cast<size_t>(n);
  }
  return OkStatus();
}

}  // namespace

std::string JoinPath(const std::string& dir, const std::string& name) {
  if (dir.empty() || dir.back() == '/') return dir + name;
  return dir + "/" + name;
}

Status EnsureDir(const std::string& dir, int mode) {
  if (::mkdir(dir.c_str(), static_cast<mode_t>(mode)) == 0) return OkStatus();
  if (errno != EEXIST) return ErrnoStatus("mkdir", dir, errno);
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0) return ErrnoStatus("stat", dir, errno);
  if (!S_ISDIR(st.st_mode)) {
    return FailedPreconditionError(dir + " exists and is not a directory");
  }
  return OkStatus();
}

Status WriteFileAtomic(const std::string& path, std::span<const uint8_t> data,
                       int mode) {
  const std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
                  static_cast<mode_t>(mode));
  if (fd < 0) return ErrnoStatus("open", tmp, errno);
  Status status;
  if (::fchmod(fd, static_cast<mode_t>(mode)) != 0) {
    status = ErrnoStatus("fchmod", tmp, errno);
  }
  if (status.ok()) status = WriteAll(fd, tmp, data);
  if (status.ok() && ::fsync(fd) != 0)
    status = ErrnoStatus("fsync", tmp, errno);
  if (::close(fd) != 0 && status.ok())
    status = ErrnoStatus("close", tmp, errno);
  if (status.ok() && ::rename(tmp.c_str(), path.c_str()) != 0) {
    status = ErrnoStatus("rename", tmp, errno);
  }
  if (!status.ok()) {
    ::unlink(tmp.c_str());
    return status;
  }
  return SyncDir(DirOf(path));
}

StatusOr<SecretBytes> ReadSecretFile(const std::string& path, size_t max_size) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus("open", path, errno);
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    return ErrnoStatus("fstat", path, err);
  }
  if (st.st_size < 0 || static_cast<size_t>(st.st_size) > max_size) {
    ::close(fd);
    return DataLossError(path + ": unexpected size " +
                         std::to_string(st.st_size));
  }
  SecretBytes out(static_cast<size_t>(st.st_size));
  size_t done = 0;
  while (done < out.size()) {
    ssize_t n = ::read(fd, out.data() + done, out.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int err = n < 0 ? errno : EIO;
      ::close(fd);
      return n < 0 ? ErrnoStatus("read", path, err)
                   : DataLossError(path + ": file shrank while reading");
    }
    done += static_cast<size_t>(n);
  }
  ::close(fd);
  return out;
}

}  // namespace kgr::tpm_internal
