#include "daemon/service_notifier.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <string>

namespace kgr {
namespace {

// A datagram socket standing in for systemd's notify socket: NOTIFY_SOCKET
// names it for the test's duration.
class NotifySocket {
 public:
  NotifySocket() {
    char dir[] = "/tmp/kgr-notify-XXXXXX";
    dir_ = mkdtemp(dir);
    path_ = dir_ + "/notify";
    fd_ = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, path_.c_str(), sizeof(a.sun_path) - 1);
    EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
    setenv("NOTIFY_SOCKET", path_.c_str(), 1);
    unsetenv("WATCHDOG_PID");
  }
  ~NotifySocket() {
    unsetenv("NOTIFY_SOCKET");
    unsetenv("WATCHDOG_USEC");
    close(fd_);
    unlink(path_.c_str());
    rmdir(dir_.c_str());
  }
  // The next datagram, "" if none is waiting.
  std::string Next() {
    char buf[512];
    ssize_t n = recv(fd_, buf, sizeof(buf), 0);
    return n > 0 ? std::string(buf, n) : "";
  }

 private:
  std::string dir_, path_;
  int fd_ = -1;
};

TEST(ServiceNotifierTest, ReadyReloadingStoppingReachTheSocket) {
  NotifySocket socket;
  ServiceNotifier n;
  EXPECT_TRUE(n.notifying());
  EXPECT_EQ(n.watchdog_interval_ms(), 0u);
  n.Ready("serving");
  EXPECT_EQ(socket.Next(), "READY=1\nSTATUS=serving");
  n.Reloading();
  EXPECT_EQ(socket.Next(), "RELOADING=1");
  n.Stopping();
  EXPECT_EQ(socket.Next(), "STOPPING=1");
  n.Tick(1000);  // no watchdog: no ping
  EXPECT_EQ(socket.Next(), "");
}

TEST(ServiceNotifierTest, WatchdogPingsAtHalfTheInterval) {
  NotifySocket socket;
  setenv("WATCHDOG_USEC", "1000000", 1);
  ServiceNotifier n;
  EXPECT_EQ(n.watchdog_interval_ms(), 1000u);
  n.Tick(10'000);
  EXPECT_EQ(socket.Next(), "WATCHDOG=1");
  n.Tick(10'400);
  EXPECT_EQ(socket.Next(), "");
  n.Tick(10'500);
  EXPECT_EQ(socket.Next(), "WATCHDOG=1");
}

TEST(ServiceNotifierTest, WatchdogForAnotherProcessIsNotOurs) {
  NotifySocket socket;
  setenv("WATCHDOG_USEC", "1000000", 1);
  setenv("WATCHDOG_PID", std::to_string(getpid() + 1).c_str(), 1);
  ServiceNotifier n;
  unsetenv("WATCHDOG_PID");
  EXPECT_EQ(n.watchdog_interval_ms(), 0u);
  n.Tick(10'000);
  EXPECT_EQ(socket.Next(), "");
}

TEST(ServiceNotifierTest, WithoutNotifySocketNothingIsSent) {
  unsetenv("NOTIFY_SOCKET");
  setenv("WATCHDOG_USEC", "1000000", 1);
  ServiceNotifier n;
  unsetenv("WATCHDOG_USEC");
  EXPECT_FALSE(n.notifying());
  EXPECT_EQ(n.watchdog_interval_ms(), 0u);
  n.Ready("serving");  // no socket to reach: must not fail or block
  n.Tick(10'000);
}

}  // namespace
}  // namespace kgr
