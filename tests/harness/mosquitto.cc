#include "harness/mosquitto.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>

#include "harness/net.h"

namespace kgr::harness {
namespace {

constexpr char kMosquitto[] = "/usr/sbin/mosquitto";
constexpr int kStartTimeoutMs = 10000;

std::string Tail(const std::string& path, size_t max_bytes = 2000) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string s = ss.str();
  return s.size() > max_bytes ? s.substr(s.size() - max_bytes) : s;
}

}  // namespace

Status RunProvisioning(const std::string& script,
                       const std::vector<std::string>& args,
                       const std::string& log_file) {
  std::vector<std::string> argv = {
      "/bin/bash", std::string(KGR_SOURCE_DIR) + "/provisioning/" + script};
  argv.insert(argv.end(), args.begin(), args.end());
  const std::string log = log_file.empty() ? "/dev/null" : log_file;
  int pid = SpawnLogged(argv, log);
  if (pid < 0) return InternalError("cannot start " + argv[1]);
  int status = 0;
  if (::waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
      WEXITSTATUS(status) != 0) {
    return InternalError(script + " failed; log " + log + ":\n" +
                         (log_file.empty() ? "" : Tail(log_file)));
  }
  return OkStatus();
}

Mosquitto::Mosquitto(std::string dir) : dir_(std::move(dir)) {}

Mosquitto::~Mosquitto() { Stop(); }

std::string Mosquitto::LogTail() const { return Tail(log_file()); }

Status Mosquitto::Provision() {
  // The broker (user mosquitto after dropping root) must reach its files.
  for (const std::string& d : {dir_, pki_dir(), dir_ + "/conf"}) {
    ::mkdir(d.c_str(), 0755);
    if (::chmod(d.c_str(), 0755) != 0) {
      return InternalError("cannot chmod " + d);
    }
  }
  const std::string log = dir_ + "/provisioning.log";
  KGR_RETURN_IF_ERROR(RunProvisioning("make-ca.sh", {pki_dir()}, log));
  KGR_RETURN_IF_ERROR(
      RunProvisioning("issue-cert.sh", {pki_dir(), "broker", "broker"}, log));
  port_ = FreeLoopbackPort();
  if (port_ <= 0) return UnavailableError("no free loopback port");
  provisioned_ = true;
  return OkStatus();
}

Status Mosquitto::Start() {
  if (running()) return FailedPreconditionError("mosquitto already running");
  if (!provisioned_) KGR_RETURN_IF_ERROR(Provision());
  const std::string conf_dir = dir_ + "/conf";
  std::vector<std::string> render = {
      "/bin/bash",  std::string(KGR_SOURCE_DIR) + "/broker-config/render.sh",
      "--out-dir",  conf_dir,
      "--port",     std::to_string(port_),
      "--cafile",   ca_file(),
      "--certfile", pki_dir() + "/broker.crt",
      "--keyfile",  pki_dir() + "/broker.key"};
  int rpid = SpawnLogged(render, dir_ + "/provisioning.log");
  int status = 0;
  if (rpid < 0 || ::waitpid(rpid, &status, 0) != rpid || !WIFEXITED(status) ||
      WEXITSTATUS(status) != 0) {
    return InternalError("render.sh failed:\n" +
                         Tail(dir_ + "/provisioning.log"));
  }

  pid_ =
      SpawnLogged({kMosquitto, "-c", conf_dir + "/mosquitto.conf"}, log_file());
  if (pid_ < 0) return InternalError("cannot start " + std::string(kMosquitto));
  const auto deadline = std::chrono::steady_clock::now() +
                        std::chrono::milliseconds(kStartTimeoutMs);
  while (std::chrono::steady_clock::now() < deadline) {
    int st = 0;
    if (::waitpid(pid_, &st, WNOHANG) == pid_) {
      pid_ = -1;
      return UnavailableError("mosquitto exited at start; log:\n" + LogTail());
    }
    if (WaitForPort(port_, 100)) return OkStatus();
  }
  Stop();
  return UnavailableError("mosquitto did not listen on port " +
                          std::to_string(port_) + "; log:\n" + LogTail());
}

Status Mosquitto::Restart() {
  Stop();
  return Start();
}

void Mosquitto::Stop() {
  if (pid_ > 0) StopProcess(pid_);
  pid_ = -1;
}

StatusOr<ClientCert> Mosquitto::IssueClient(const std::string& cn,
                                            const std::string& role) {
  if (!provisioned_) KGR_RETURN_IF_ERROR(Provision());
  std::vector<std::string> args = {pki_dir(), cn};
  if (!role.empty()) args.push_back(role);
  KGR_RETURN_IF_ERROR(
      RunProvisioning("issue-cert.sh", args, dir_ + "/provisioning.log"));
  return ClientCert{pki_dir() + "/" + cn + ".crt",
                    pki_dir() + "/" + cn + ".key"};
}

StatusOr<MqttOptions> Mosquitto::ClientOptions(const std::string& cn,
                                               const std::string& role) {
  KGR_ASSIGN_OR_RETURN(ClientCert cert, IssueClient(cn, role));
  MqttOptions o;
  o.host = "127.0.0.1";
  o.port = port_;
  o.tls = true;
  o.ca_file = ca_file();
  o.cert_file = cert.cert_file;
  o.key_file = cert.key_file;
  o.client_id = cn;
  return o;
}

}  // namespace kgr::harness
