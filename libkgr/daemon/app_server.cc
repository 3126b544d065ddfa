// The application API's socket and its I/O thread (app_server.h).
#include "daemon/app_server.h"

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

namespace kgr {
namespace {

std::string Errno(const char* what) {
  return std::string(what) + ": " + std::strerror(errno);
}

}  // namespace

StatusOr<std::unique_ptr<AppServer>> AppServer::Start(AppServerOptions options,
                                                      Callbacks callbacks) {
  std::unique_ptr<AppServer> s(
      new AppServer(std::move(options), std::move(callbacks)));
  KGR_RETURN_IF_ERROR(s->Listen());
  s->thread_ = std::thread([p = s.get()] { p->Loop(); });
  return s;
}

Status AppServer::Listen() {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (options_.path.size() >= sizeof(addr.sun_path)) {
    return InvalidArgumentError("application socket path too long (over " +
                                std::to_string(sizeof(addr.sun_path) - 1) +
                                " bytes): " + options_.path);
  }
  gid_t gid = 0;
  if (!options_.group.empty()) {
    const struct group* g = getgrnam(options_.group.c_str());
    if (g == nullptr) {
      return InvalidArgumentError("api.group: no group named '" +
                                  options_.group + "'");
    }
    gid = g->gr_gid;
  }
  std::memcpy(addr.sun_path, options_.path.data(), options_.path.size());
  struct stat st {};
  if (lstat(options_.path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) {
    unlink(options_.path.c_str());
  }
  listen_fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (listen_fd_ < 0) return InternalError(Errno("socket"));
  // Created with no access for others; opened up once group and mode are set.
  mode_t old = umask(0177);
  int rc = bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  umask(old);
  if (rc != 0) {
    return UnavailableError(Errno(("bind " + options_.path).c_str()));
  }
  if (!options_.group.empty() &&
      (chown(options_.path.c_str(), static_cast<uid_t>(-1), gid) != 0 ||
       chmod(options_.path.c_str(), 0660) != 0)) {
    return PermissionDeniedError(Errno(("group of " + options_.path).c_str()));
  }
  if (listen(listen_fd_, 64) != 0) return InternalError(Errno("listen"));
  wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd_ < 0) return InternalError(Errno("eventfd"));
  return OkStatus();
}

AppServer::~AppServer() { Stop(); }

void AppServer::Stop() {
  if (!stop_.exchange(true)) {
    Wake();
    if (thread_.joinable()) thread_.join();
    std::vector<uint64_t> ids;
    {
      std::lock_guard lock(mu_);
      for (auto& [id, c] : conns_) ids.push_back(id);
    }
    for (uint64_t id : ids) CloseConn(id);
    if (listen_fd_ >= 0) {
      close(listen_fd_);
      unlink(options_.path.c_str());
    }
    if (wake_fd_ >= 0) close(wake_fd_);
    listen_fd_ = wake_fd_ = -1;
  }
}

void AppServer::Wake() {
  uint64_t one = 1;
  if (wake_fd_ >= 0) (void)!write(wake_fd_, &one, sizeof(one));
}

void AppServer::Queue(Conn& c, std::string bytes, bool event) {
  c.out_bytes += bytes.size();
  c.out_events += event ? 1 : 0;
  c.out.push_back(Out{std::move(bytes), event});
}

bool AppServer::Send(uint64_t conn, const nlohmann::json& message, bool event) {
  std::string bytes = EncodeAppFrame(message);
  std::lock_guard lock(mu_);
  auto it = conns_.find(conn);
  if (it == conns_.end() || it->second.closing) return false;
  Conn& c = it->second;
  if (event) {
    if (c.out_events >= options_.queue_messages ||
        c.out_bytes + bytes.size() > options_.queue_bytes) {
      ++c.dropped;
      ++c.dropped_unsaid;
      ++total_dropped_;
      return false;
    }
    if (c.dropped_unsaid > 0) {
      Queue(c,
            EncodeAppFrame({{"event", "dropped"},
                            {"count", c.dropped_unsaid},
                            {"total", c.dropped}}),
            true);
      c.dropped_unsaid = 0;
    }
  } else if (c.out_bytes > 4 * options_.queue_bytes) {
    spdlog::warn("api: connection {} does not read its answers: closed", conn);
    c.closing = true;
    c.out.clear();
    c.out_bytes = c.out_events = c.out_offset = 0;
    Wake();
    return false;
  }
  bool was_empty = c.out.empty();
  Queue(c, std::move(bytes), event);
  if (was_empty) Wake();
  return true;
}

void AppServer::CloseAfterWrite(uint64_t conn) {
  std::lock_guard lock(mu_);
  auto it = conns_.find(conn);
  if (it != conns_.end()) it->second.closing = true;
  Wake();
}

bool AppServer::HasRoomForEvent(uint64_t conn, size_t frame_bytes) const {
  std::lock_guard lock(mu_);
  auto it = conns_.find(conn);
  if (it == conns_.end() || it->second.closing) return false;
  const Conn& c = it->second;
  return c.out_events < options_.queue_messages &&
         c.out_bytes + frame_bytes <= options_.queue_bytes;
}

uint64_t AppServer::Dropped(uint64_t conn) const {
  std::lock_guard lock(mu_);
  auto it = conns_.find(conn);
  return it == conns_.end() ? 0 : it->second.dropped;
}

size_t AppServer::Connections() const {
  std::lock_guard lock(mu_);
  return conns_.size();
}

void AppServer::Loop() {
  std::vector<pollfd> fds;
  std::vector<uint64_t> ids;
  while (!stop_) {
    fds.assign({{listen_fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}});
    ids.assign(2, 0);
    {
      std::lock_guard lock(mu_);
      for (auto& [id, c] : conns_) {
        short ev = 0;
        // A connection with a full queue is not read: its requests wait in
        // the kernel's buffer (backpressure on the application).
        if (!c.closing && c.out_bytes < options_.queue_bytes) ev |= POLLIN;
        if (!c.out.empty() || c.closing) ev |= POLLOUT;
        fds.push_back({c.fd, ev, 0});
        ids.push_back(id);
      }
    }
    if (poll(fds.data(), fds.size(), 500) < 0 && errno != EINTR) {
      spdlog::error("api: poll: {}", std::strerror(errno));
      return;
    }
    if (fds[1].revents & POLLIN) {
      uint64_t n;
      (void)!read(wake_fd_, &n, sizeof(n));
    }
    if (fds[0].revents & POLLIN) Accept();
    for (size_t i = 2; i < fds.size(); ++i) {
      short re = fds[i].revents;
      bool alive = true;
      if (re & POLLIN) alive = ReadFrom(ids[i], fds[i].fd);
      if (alive && (re & POLLOUT)) alive = WriteTo(ids[i]);
      if (alive && (re & (POLLERR | POLLHUP)) && !(re & POLLIN)) alive = false;
      if (!alive) CloseConn(ids[i]);
    }
  }
}

void AppServer::Accept() {
  for (;;) {
    int fd =
        accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;
    ucred cred{};
    socklen_t len = sizeof(cred);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
      close(fd);
      continue;
    }
    uint64_t id;
    {
      std::lock_guard lock(mu_);
      id = next_id_++;
      conns_[id].fd = fd;
    }
    if (callbacks_.opened) callbacks_.opened(id, cred.uid);
  }
}

bool AppServer::ReadFrom(uint64_t id, int fd) {
  char buf[65536];
  ssize_t n = read(fd, buf, sizeof(buf));
  if (n == 0) return false;
  if (n < 0) return errno == EAGAIN || errno == EINTR;
  std::vector<nlohmann::json> requests;
  Status bad;
  {
    std::lock_guard lock(mu_);
    Conn& c = conns_.at(id);
    c.reader.Append(buf, static_cast<size_t>(n));
    for (;;) {
      auto next = c.reader.Next();
      if (!next.ok()) {
        bad = next.status();
        break;
      }
      if (!next->has_value()) break;
      requests.push_back(std::move(**next));
    }
  }
  for (auto& r : requests) callbacks_.request(id, std::move(r));
  if (!bad.ok()) {
    // The stream cannot be resynchronised: say why, then close.
    Send(
        id,
        {{"ok", false}, {"code", "INVALID_ARGUMENT"}, {"error", bad.message()}},
        false);
    CloseAfterWrite(id);
  }
  return true;
}

bool AppServer::WriteTo(uint64_t id) {
  std::lock_guard lock(mu_);
  Conn& c = conns_.at(id);
  while (!c.out.empty()) {
    const std::string& b = c.out.front().bytes;
    ssize_t n = send(c.fd, b.data() + c.out_offset, b.size() - c.out_offset,
                     MSG_NOSIGNAL);
    if (n < 0) return errno == EAGAIN || errno == EINTR;
    c.out_offset += static_cast<size_t>(n);
    if (c.out_offset < b.size()) return true;
    c.out_bytes -= b.size();
    c.out_events -= c.out.front().event ? 1 : 0;
    c.out_offset = 0;
    c.out.pop_front();
  }
  return !c.closing;
}

void AppServer::CloseConn(uint64_t id) {
  {
    std::lock_guard lock(mu_);
    auto it = conns_.find(id);
    if (it == conns_.end()) return;
    close(it->second.fd);
    conns_.erase(it);
  }
  if (callbacks_.closed) callbacks_.closed(id);
}

}  // namespace kgr
