#include "harness/swtpm.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <utility>

#include "harness/net.h"

namespace kgr::harness {

Swtpm::Swtpm(std::string state_dir) : state_dir_(std::move(state_dir)) {}

Swtpm::~Swtpm() { Stop(); }

std::string Swtpm::tcti() const {
  return "swtpm:host=127.0.0.1,port=" + std::to_string(port_);
}

bool Swtpm::Start() {
  if (running()) return true;
  std::error_code ec;
  std::filesystem::create_directories(state_dir_, ec);
  if (ec) {
    error_ = "cannot create " + state_dir_ + ": " + ec.message();
    return false;
  }
  // A free port can be taken between the probe and swtpm's bind: retry.
  for (int attempt = 0; attempt < 3; ++attempt) {
    if (StartOnce()) return true;
  }
  return false;
}

bool Swtpm::StartOnce() {
  const int port = FreeLoopbackPort(2);
  if (port <= 0) {
    error_ = "no free loopback port pair";
    return false;
  }
  const std::string tpmstate = "dir=" + state_dir_;
  const std::string server =
      "type=tcp,port=" + std::to_string(port) + ",bindaddr=127.0.0.1";
  const std::string ctrl =
      "type=tcp,port=" + std::to_string(port + 1) + ",bindaddr=127.0.0.1";
  const std::string log = state_dir_ + "/swtpm.log";
  pid_t pid = ::fork();
  if (pid < 0) {
    error_ = "fork failed";
    return false;
  }
  if (pid == 0) {
    int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (fd >= 0) {
      ::dup2(fd, STDOUT_FILENO);
      ::dup2(fd, STDERR_FILENO);
      ::close(fd);
    }
    ::execlp("swtpm", "swtpm", "socket", "--tpm2", "--tpmstate",
             tpmstate.c_str(), "--server", server.c_str(), "--ctrl",
             ctrl.c_str(), "--flags", "not-need-init,startup-clear",
             static_cast<char*>(nullptr));
    ::_exit(127);
  }
  pid_ = pid;
  port_ = port;
  if (WaitForPort(port, 10000)) {
    int st = 0;
    if (::waitpid(pid, &st, WNOHANG) == 0) return true;  // still running
  }
  error_ = "swtpm did not come up on port " + std::to_string(port) + " (see " +
           log + ")";
  Stop();
  return false;
}

void Swtpm::Stop() {
  if (pid_ > 0) StopProcess(pid_);
  pid_ = -1;
}

bool Swtpm::Restart() {
  Stop();
  return Start();
}

}  // namespace kgr::harness
