#include "mqtt/tcp_nodelay.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>

#include "gtest/gtest.h"

namespace kgr::mqtt_internal {
namespace {

// A loopback listener plus one client socket connected to it.
class LoopbackPair {
 public:
  LoopbackPair() {
    listener_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (bind(listener_, reinterpret_cast<sockaddr*>(&a), len) != 0 ||
        listen(listener_, 4) != 0 ||
        getsockname(listener_, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
      return;
    }
    port_ = ntohs(a.sin_port);
    client_ = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(client_, reinterpret_cast<sockaddr*>(&a), len) != 0) return;
    accepted_ = accept(listener_, nullptr, nullptr);
  }
  ~LoopbackPair() {
    for (int fd : {client_, accepted_, listener_}) {
      if (fd >= 0) close(fd);
    }
  }
  int port() const { return port_; }
  int client() const { return client_; }
  int accepted() const { return accepted_; }

 private:
  int listener_ = -1, client_ = -1, accepted_ = -1, port_ = -1;
};

TEST(TcpNoDelayTest, ResolvesLoopback) {
  auto peers = ResolvePeers("127.0.0.1", 8883);
  ASSERT_TRUE(peers.ok());
  ASSERT_EQ(peers->size(), 1u);
  EXPECT_EQ(peers->front().addr.ss_family, AF_INET);
  EXPECT_EQ(ResolvePeers("no-such-host.invalid", 1).status().code(),
            StatusCode::kUnavailable);
}

TEST(TcpNoDelayTest, SetsOnlySocketsToThePeer) {
  LoopbackPair broker, other;
  ASSERT_GT(broker.accepted(), 0);
  ASSERT_GT(other.accepted(), 0);
  ASSERT_FALSE(TcpNoDelayIsSet(broker.client()));  // Nagle is the default

  auto peers = ResolvePeers("127.0.0.1", broker.port());
  ASSERT_TRUE(peers.ok());
  std::vector<int> fds = TcpSocketsConnectedTo(*peers);
  EXPECT_EQ(fds, std::vector<int>{broker.client()});

  EXPECT_EQ(SetTcpNoDelayForPeers(*peers), 1);
  EXPECT_TRUE(TcpNoDelayIsSet(broker.client()));
  EXPECT_FALSE(TcpNoDelayIsSet(broker.accepted()));  // its peer differs
  EXPECT_FALSE(TcpNoDelayIsSet(other.client()));
}

TEST(TcpNoDelayTest, NoMatchingSocket) {
  LoopbackPair pair;
  ASSERT_GT(pair.accepted(), 0);
  auto peers = ResolvePeers("127.0.0.1", 1);  // nothing connected there
  ASSERT_TRUE(peers.ok());
  EXPECT_EQ(SetTcpNoDelayForPeers(*peers), 0);
  EXPECT_FALSE(TcpNoDelayIsSet(-1));
}

}  // namespace
}  // namespace kgr::mqtt_internal
