#include "kgr/control.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <mutex>
#include <string>
#include <string_view>

namespace kgr {
namespace {

constexpr size_t kMaxLine = 1 << 20;

Status SockAddr(const std::string& path, sockaddr_un* addr) {
  std::memset(addr, 0, sizeof *addr);
  addr->sun_family = AF_UNIX;
  if (path.size() >= sizeof addr->sun_path) {
    return InvalidArgumentError("control socket path too long: " + path);
  }
  std::memcpy(addr->sun_path, path.c_str(), path.size() + 1);
  return OkStatus();
}

// Reads one '\n'-terminated line within the deadline.
bool ReadLine(int fd, std::string* line, int timeout_ms) {
  auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  char buf[4096];
  while (line->find('\n') == std::string::npos) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                    deadline - std::chrono::steady_clock::now())
                    .count();
    if (left <= 0) return false;
    pollfd p{fd, POLLIN, 0};
    int r = ::poll(&p, 1, static_cast<int>(left));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    line->append(buf, static_cast<size_t>(n));
    if (line->size() > kMaxLine) return false;
  }
  line->resize(line->find('\n'));
  return true;
}

bool WriteAll(int fd, const std::string& s) {
  size_t off = 0;
  while (off < s.size()) {
    ssize_t n = ::send(fd, s.data() + off, s.size() - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    off += static_cast<size_t>(n);
  }
  return true;
}

}  // namespace

StatusOr<std::unique_ptr<ControlServer>> ControlServer::Start(
    const std::string& path, Handler handler) {
  sockaddr_un addr;
  KGR_RETURN_IF_ERROR(SockAddr(path, &addr));
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return InternalError("socket: " + std::string(strerror(errno)));
  ::unlink(path.c_str());
  mode_t old = ::umask(0177);
  int r = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  ::umask(old);
  if (r != 0 || ::listen(fd, 16) != 0) {
    std::string err = strerror(errno);
    ::close(fd);
    return InternalError("control socket " + path + ": " + err);
  }
  std::unique_ptr<ControlServer> s(new ControlServer());
  s->path_ = path;
  s->fd_ = fd;
  s->handler_ = std::move(handler);
  s->thread_ = std::thread([p = s.get()] { p->AcceptLoop(); });
  return s;
}

void ControlServer::AcceptLoop() {
  while (!stop_) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, 200) <= 0) continue;
    int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) continue;
    std::string line;
    if (!ReadLine(c, &line, 2000)) {
      ::close(c);
      continue;
    }
    nlohmann::json req = nlohmann::json::parse(line, nullptr, false);
    if (req.is_discarded() || !req.is_object()) {
      WriteAll(c, R"({"ok":false,"error":"request is not a JSON object"})"
                  "\n");
      ::close(c);
      continue;
    }
    // The connection is closed by whoever responds, exactly once.
    auto once = std::make_shared<std::once_flag>();
    handler_(std::move(req), [c, once](nlohmann::json resp) {
      std::call_once(*once, [&] {
        WriteAll(c, resp.dump() + "\n");
        ::close(c);
      });
    });
  }
}

void ControlServer::Stop() {
  if (stop_.exchange(true)) return;
  if (thread_.joinable()) thread_.join();
  if (fd_ >= 0) ::close(fd_);
  ::unlink(path_.c_str());
}

ControlServer::~ControlServer() { Stop(); }

StatusOr<nlohmann::json> ControlCall(const std::string& path,
                                     const nlohmann::json& request,
                                     int timeout_ms) {
  sockaddr_un addr;
  KGR_RETURN_IF_ERROR(SockAddr(path, &addr));
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return InternalError("socket failed");
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return UnavailableError("no daemon listening on " + path);
  }
  std::string line;
  bool ok =
      WriteAll(fd, request.dump() + "\n") && ReadLine(fd, &line, timeout_ms);
  ::close(fd);
  if (!ok) return DeadlineExceededError("the daemon did not answer in time");
  nlohmann::json resp = nlohmann::json::parse(line, nullptr, false);
  if (resp.is_discarded()) return InternalError("bad answer from the daemon");
  return resp;
}

StatusOr<std::unique_ptr<DirLock>> DirLock::Acquire(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    return InternalError("lock " + path + ": " + strerror(errno));
  }
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    ::close(fd);
    return FailedPreconditionError("another kgr process uses " + path);
  }
  std::unique_ptr<DirLock> l(new DirLock());
  l->fd_ = fd;
  return l;
}

StatusOr<std::unique_ptr<DirLock>> DirLock::ForStateDir(
    const std::string& dir) {
  const bool created = ::mkdir(dir.c_str(), 0700) == 0;
  if (!created && errno != EEXIST) {
    return InternalError("cannot create " + dir + ": " + strerror(errno));
  }
  auto lock = Acquire(dir + "/lock");
  if (!lock.ok()) {
    if (created) ::rmdir(dir.c_str());
    return lock.status();
  }
  if (created) (*lock)->created_dir_ = dir;
  return lock;
}

namespace {

// True if `dir` holds no entry but "lock".
bool HoldsOnlyTheLock(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return false;
  bool only_lock = true;
  while (const dirent* e = ::readdir(d)) {
    const std::string_view name = e->d_name;
    if (name != "." && name != ".." && name != "lock") only_lock = false;
  }
  ::closedir(d);
  return only_lock;
}

}  // namespace

DirLock::~DirLock() {
  // Still holding the lock: no other kgr process is inside the directory.
  if (fd_ >= 0 && !created_dir_.empty() && HoldsOnlyTheLock(created_dir_)) {
    ::unlink((created_dir_ + "/lock").c_str());
    ::rmdir(created_dir_.c_str());
  }
  if (fd_ >= 0) ::close(fd_);
}

}  // namespace kgr
