// TCP_NODELAY for Paho's sockets.
//
// Paho C 1.3.12 creates its socket in Socket_new() without TCP_NODELAY and
// offers no hook or API to reach the descriptor. After every (re)connect the
// transport therefore looks through this process's descriptors
// (/proc/self/fd) for TCP sockets whose peer is the broker and sets
// TCP_NODELAY on them. See docs/broker.md, "TCP_NODELAY".
//
// Every socket of this process connected to the broker's address and port
// gets the option; they are all MQTT clients of ours, for which disabling
// Nagle is what we want. Thread-safe (only system calls on descriptors).
#ifndef KGR_MQTT_TCP_NODELAY_H_
#define KGR_MQTT_TCP_NODELAY_H_

#include <sys/socket.h>

#include <string>
#include <vector>

#include "kgr/status.h"

namespace kgr::mqtt_internal {

// One IPv4 or IPv6 address with port, as getpeername() reports it.
struct PeerAddress {
  sockaddr_storage addr{};
  socklen_t len = 0;
};

// Resolves `host` (name or numeric) and `port` to every IPv4/IPv6 address
// Paho may connect to. UNAVAILABLE when resolution fails.
StatusOr<std::vector<PeerAddress>> ResolvePeers(const std::string& host,
                                                int port);

// The descriptors of this process's connected TCP sockets whose peer is one
// of `peers`.
std::vector<int> TcpSocketsConnectedTo(const std::vector<PeerAddress>& peers);

// Sets TCP_NODELAY on every socket TcpSocketsConnectedTo(peers) returns.
// Returns how many sockets now have it set.
int SetTcpNoDelayForPeers(const std::vector<PeerAddress>& peers);

// Reads TCP_NODELAY back; false on error.
bool TcpNoDelayIsSet(int fd);

}  // namespace kgr::mqtt_internal

#endif  // KGR_MQTT_TCP_NODELAY_H_
