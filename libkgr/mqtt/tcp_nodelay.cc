#include "mqtt/tcp_nodelay.h"

#include <dirent.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace kgr::mqtt_internal {
namespace {

bool SameAddress(const sockaddr_storage& a, const sockaddr_storage& b) {
  if (a.ss_family != b.ss_family) return false;
  if (a.ss_family == AF_INET) {
    const auto& x = reinterpret_cast<const sockaddr_in&>(a);
    const auto& y = reinterpret_cast<const sockaddr_in&>(b);
    return x.sin_port == y.sin_port && x.sin_addr.s_addr == y.sin_addr.s_addr;
  }
  if (a.ss_family == AF_INET6) {
    const auto& x = reinterpret_cast<const sockaddr_in6&>(a);
    const auto& y = reinterpret_cast<const sockaddr_in6&>(b);
    return x.sin6_port == y.sin6_port &&
           std::memcmp(&x.sin6_addr, &y.sin6_addr, sizeof x.sin6_addr) == 0;
  }
  return false;
}

// True if `fd` is a connected TCP socket whose peer is in `peers`.
bool IsTcpSocketTo(int fd, const std::vector<PeerAddress>& peers) {
  int type = 0;
  socklen_t len = sizeof type;
  if (::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0 ||
      type != SOCK_STREAM) {
    return false;  // not a socket (ENOTSOCK) or not a stream socket
  }
  int protocol = 0;
  len = sizeof protocol;
  if (::getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &protocol, &len) != 0 ||
      protocol != IPPROTO_TCP) {
    return false;
  }
  sockaddr_storage peer{};
  len = sizeof peer;
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &len) != 0) {
    return false;  // not connected (yet)
  }
  for (const PeerAddress& p : peers) {
    if (SameAddress(peer, p.addr)) return true;
  }
  return false;
}

}  // namespace

StatusOr<std::vector<PeerAddress>> ResolvePeers(const std::string& host,
                                                int port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* result = nullptr;
  int rc = ::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints,
                         &result);
  if (rc != 0) {
    return UnavailableError("cannot resolve broker host '" + host +
                            "': " + ::gai_strerror(rc));
  }
  std::vector<PeerAddress> peers;
  for (addrinfo* ai = result; ai != nullptr; ai = ai->ai_next) {
    if ((ai->ai_family != AF_INET && ai->ai_family != AF_INET6) ||
        ai->ai_addrlen > sizeof(sockaddr_storage)) {
      continue;
    }
    PeerAddress p;
    std::memcpy(&p.addr, ai->ai_addr, ai->ai_addrlen);
    p.len = ai->ai_addrlen;
    peers.push_back(p);
  }
  ::freeaddrinfo(result);
  if (peers.empty()) {
    return UnavailableError("broker host '" + host + "' has no IP address");
  }
  return peers;
}

std::vector<int> TcpSocketsConnectedTo(const std::vector<PeerAddress>& peers) {
  std::vector<int> fds;
  DIR* dir = ::opendir("/proc/self/fd");
  if (dir == nullptr) return fds;
  const int own_fd = ::dirfd(dir);
  while (dirent* e = ::readdir(dir)) {
    char* end = nullptr;
    long fd = std::strtol(e->d_name, &end, 10);
    if (end == e->d_name || *end != '\0' || fd < 0 || fd == own_fd) continue;
    if (IsTcpSocketTo(static_cast<int>(fd), peers)) {
      fds.push_back(static_cast<int>(fd));
    }
  }
  ::closedir(dir);
  return fds;
}

int SetTcpNoDelayForPeers(const std::vector<PeerAddress>& peers) {
  int count = 0;
  for (int fd : TcpSocketsConnectedTo(peers)) {
    // If `fd` was closed and reused since the scan, this at worst disables
    // Nagle on another TCP socket of ours, or fails harmlessly.
    int one = 1;
    if (::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) == 0) {
      ++count;
    }
  }
  return count;
}

bool TcpNoDelayIsSet(int fd) {
  int value = 0;
  socklen_t len = sizeof value;
  return ::getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &value, &len) == 0 &&
         value != 0;
}

}  // namespace kgr::mqtt_internal
