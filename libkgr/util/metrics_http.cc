#include "kgr/metrics_http.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <vector>

namespace kgr {
namespace {

using Result = HttpRequestHead::Result;

HttpRequestHead Bad(std::string error) {
  HttpRequestHead h;
  h.result = Result::kBad;
  h.error = std::move(error);
  return h;
}

bool IsTokenChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c >= '0' && c <= '9') || std::strchr("!#$%&'*+-.^_`|~", c) != nullptr;
}

// The request line: METHOD SP target SP HTTP/1.x
HttpRequestHead ParseRequestLine(std::string_view line) {
  size_t sp1 = line.find(' ');
  size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos ||
      line.find(' ', sp2 + 1) != std::string_view::npos) {
    return Bad("request line is not 'METHOD TARGET VERSION'");
  }
  std::string_view method = line.substr(0, sp1);
  std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  std::string_view version = line.substr(sp2 + 1);
  if (method.empty() || method.size() > 16) return Bad("bad method");
  for (char c : method) {
    if (c < 'A' || c > 'Z') return Bad("bad method");
  }
  if (target.empty() || target[0] != '/') return Bad("bad target");
  for (char c : target) {
    if (static_cast<unsigned char>(c) <= ' ' || c == 0x7f) {
      return Bad("bad target");
    }
  }
  if (version != "HTTP/1.1" && version != "HTTP/1.0") {
    return Bad("unsupported HTTP version");
  }
  HttpRequestHead h;
  h.result = Result::kComplete;
  h.method = std::string(method);
  h.path = std::string(target.substr(0, target.find('?')));
  return h;
}

// "Name: value": a token, a colon, printable text.
bool ValidHeaderLine(std::string_view line) {
  size_t colon = line.find(':');
  if (colon == 0 || colon == std::string_view::npos) return false;
  for (char c : line.substr(0, colon)) {
    if (!IsTokenChar(c)) return false;
  }
  for (char c : line.substr(colon + 1)) {
    if ((static_cast<unsigned char>(c) < ' ' && c != '\t') || c == 0x7f) {
      return false;
    }
  }
  return true;
}

const char* Reason(int code) {
  switch (code) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 431:
      return "Request Header Fields Too Large";
  }
  return "Service Unavailable";
}

std::string Answer(int code, std::string_view content_type,
                   const std::string& body, bool head_only,
                   std::string_view extra = {}) {
  std::string out = "HTTP/1.1 " + std::to_string(code) + " " + Reason(code) +
                    "\r\nContent-Type: " + std::string(content_type) +
                    "\r\nContent-Length: " + std::to_string(body.size()) +
                    "\r\nConnection: close\r\n" + std::string(extra) + "\r\n";
  if (!head_only) out += body;
  return out;
}

uint64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

HttpRequestHead ParseHttpRequestHead(std::string_view data) {
  size_t end = data.find("\r\n\r\n");
  size_t end_lf = data.find("\n\n");
  if (end_lf != std::string_view::npos &&
      (end == std::string_view::npos || end_lf < end)) {
    end = end_lf;
  }
  if (end == std::string_view::npos) {
    HttpRequestHead h;
    if (data.size() > kMaxRequestBytes) h.result = Result::kTooLarge;
    return h;
  }
  if (end > kMaxRequestBytes) {
    HttpRequestHead h;
    h.result = Result::kTooLarge;
    return h;
  }
  std::string_view head = data.substr(0, end);
  if (head.find('\0') != std::string_view::npos) return Bad("NUL in request");
  HttpRequestHead req;
  bool first = true;
  while (!head.empty() || first) {
    size_t nl = head.find('\n');
    std::string_view line = head.substr(0, nl);
    head =
        nl == std::string_view::npos ? std::string_view() : head.substr(nl + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (first) {
      req = ParseRequestLine(line);
      if (req.result == Result::kBad) return req;
      first = false;
    } else if (!ValidHeaderLine(line)) {
      return Bad("bad header line");
    }
  }
  return req;
}

std::string HttpAnswer(
    const HttpRequestHead& head,
    const std::function<std::optional<std::string>()>& render) {
  constexpr std::string_view kText = "text/plain; charset=utf-8";
  if (head.result == Result::kTooLarge) {
    return Answer(431, kText, "request too large\n", false);
  }
  if (head.result != Result::kComplete) {
    return Answer(400, kText, "bad request: " + head.error + "\n", false);
  }
  if (head.path != "/metrics") return Answer(404, kText, "not found\n", false);
  const bool head_only = head.method == "HEAD";
  if (head.method != "GET" && !head_only) {
    return Answer(405, kText, "only GET\n", false, "Allow: GET, HEAD\r\n");
  }
  std::optional<std::string> body = render();
  if (!body.has_value()) {
    return Answer(503, kText, "metrics unavailable (daemon busy)\n", head_only);
  }
  return Answer(200, "text/plain; version=0.0.4; charset=utf-8", *body,
                head_only);
}

StatusOr<std::unique_ptr<MetricsServer>> MetricsServer::Start(
    const std::string& address, Render render) {
  std::string host;
  int port = 0;
  size_t colon = address.rfind(':');
  if (colon == std::string::npos) {
    return InvalidArgumentError("metrics_listen must be host:port, got '" +
                                address + "'");
  }
  host = address.substr(0, colon);
  port = std::atoi(address.c_str() + colon + 1);
  if (host == "localhost") host = "127.0.0.1";
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(port));
  if (port < 0 || port > 65535 ||
      ::inet_pton(AF_INET, host.c_str(), &sa.sin_addr) != 1) {
    return InvalidArgumentError(
        "metrics_listen must be an IPv4 address and a port, got '" + address +
        "'");
  }
  if ((ntohl(sa.sin_addr.s_addr) >> 24) != 127) {
    spdlog::warn(
        "metrics: listening on {}, not loopback: anyone who can "
        "reach it reads the metrics",
        address);
  }
  std::unique_ptr<MetricsServer> s(new MetricsServer());
  s->fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (s->fd_ < 0)
    return InternalError(std::string("metrics: socket: ") +
                         std::strerror(errno));
  int one = 1;
  ::setsockopt(s->fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(s->fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 ||
      ::listen(s->fd_, 16) != 0) {
    return UnavailableError("metrics: cannot listen on " + address + ": " +
                            std::strerror(errno));
  }
  socklen_t len = sizeof sa;
  ::getsockname(s->fd_, reinterpret_cast<sockaddr*>(&sa), &len);
  s->port_ = ntohs(sa.sin_port);
  s->render_ = std::move(render);
  s->thread_ = std::thread([p = s.get()] { p->Serve(); });
  return s;
}

MetricsServer::~MetricsServer() {
  Stop();
  if (fd_ >= 0) ::close(fd_);
}

void MetricsServer::Stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

void MetricsServer::Serve() {
  struct Conn {
    int fd;
    uint64_t deadline_ms;
    std::string in, out;
    size_t sent = 0;
    bool writing = false;
  };
  std::vector<Conn> conns;
  char buf[4096];
  while (!stop_) {
    std::vector<pollfd> fds{{fd_, POLLIN, 0}};
    for (const Conn& c : conns) {
      fds.push_back(
          {c.fd, static_cast<short>(c.writing ? POLLOUT : POLLIN), 0});
    }
    int r = ::poll(fds.data(), fds.size(), 100);
    if (r < 0 && errno != EINTR) break;
    const uint64_t now = NowMs();
    std::vector<bool> done(conns.size(), false);
    for (size_t i = 0; i < conns.size(); ++i) {
      Conn& c = conns[i];
      short ev = fds[i + 1].revents;
      if (now >= c.deadline_ms || (ev & (POLLERR | POLLNVAL))) {
        done[i] = true;
      } else if (!c.writing && (ev & (POLLIN | POLLHUP))) {
        ssize_t n = ::recv(c.fd, buf, sizeof buf, 0);
        if (n <= 0) {
          done[i] = n == 0 || (errno != EAGAIN && errno != EINTR);
          continue;
        }
        c.in.append(buf, static_cast<size_t>(n));
        HttpRequestHead head = ParseHttpRequestHead(c.in);
        if (head.result == HttpRequestHead::Result::kIncomplete) continue;
        c.out = HttpAnswer(head, render_);
        c.in.clear();
        c.writing = true;
      } else if (c.writing && (ev & (POLLOUT | POLLHUP))) {
        ssize_t n = ::send(c.fd, c.out.data() + c.sent, c.out.size() - c.sent,
                           MSG_NOSIGNAL);
        if (n > 0) c.sent += static_cast<size_t>(n);
        if ((n < 0 && errno != EAGAIN && errno != EINTR) ||
            c.sent == c.out.size()) {
          done[i] = true;
        }
      }
    }
    for (size_t i = conns.size(); i-- > 0;) {
      if (!done[i]) continue;
      ::close(conns[i].fd);
      conns.erase(conns.begin() + static_cast<std::ptrdiff_t>(i));
    }
    if (fds[0].revents & POLLIN) {
      int fd = ::accept4(fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd >= 0 && conns.size() >= kMaxConnections) {
        ::close(fd);  // the limit: the newest is refused
      } else if (fd >= 0) {
        conns.push_back({fd, NowMs() + kConnectionMs, {}, {}});
      }
    }
  }
  for (Conn& c : conns) ::close(c.fd);
}

}  // namespace kgr
