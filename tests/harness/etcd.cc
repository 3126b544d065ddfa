#include "harness/etcd.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include <chrono>
#include <thread>

#include "cluster/etcd_client.h"
#include "harness/mosquitto.h"  // RunProvisioning
#include "harness/net.h"

namespace kgr::harness {
namespace {

constexpr char kEtcd[] = "/usr/bin/etcd";
constexpr int kEtcdStartTimeoutMs = 20000;

std::string Url(int port, bool tls = false) {
  return (tls ? "https://127.0.0.1:" : "http://127.0.0.1:") +
         std::to_string(port);
}

}  // namespace

Etcd::Etcd(std::string dir, int members, bool tls)
    : dir_(std::move(dir)), tls_(tls), pids_(members, -1) {}

Status Etcd::Provision() {
  const std::string pki = pki_dir(), log = dir_ + "/provisioning.log";
  KGR_RETURN_IF_ERROR(RunProvisioning("make-ca.sh", {pki}, log));
  // Role etcd: serverAuth and clientAuth, SAN IP:127.0.0.1.
  KGR_RETURN_IF_ERROR(
      RunProvisioning("issue-cert.sh", {pki, "etcd", "etcd"}, log));
  return RunProvisioning("issue-cert.sh", {pki, "ks", "ks"}, log);
}

Etcd::~Etcd() { Stop(); }

std::vector<std::string> Etcd::endpoints() const {
  std::vector<std::string> out;
  for (int p : client_ports_) out.push_back("127.0.0.1:" + std::to_string(p));
  return out;
}

std::string Etcd::StateUrl(const std::string& prefix) const {
  std::string url = "etcd://";
  for (const std::string& e : endpoints()) {
    if (url.size() > 7) url += ",";
    url += e;
  }
  return url + "/" + prefix;
}

EtcdOptions Etcd::ClientOptions() const {
  EtcdOptions o;
  o.endpoints = endpoints();
  o.connect_timeout_ms = 300;
  o.request_timeout_ms = 2000;
  if (tls_) {
    o.tls = {pki_dir() + "/ca.crt", pki_dir() + "/ks.crt",
             pki_dir() + "/ks.key"};
  }
  return o;
}

Status Etcd::StartMember(int i) {
  std::string cluster;
  for (int m = 0; m < members(); ++m) {
    if (!cluster.empty()) cluster += ",";
    cluster += "m" + std::to_string(m) + "=" + Url(peer_ports_[m]);
  }
  const std::string name = "m" + std::to_string(i);
  std::vector<std::string> argv = {kEtcd,
                                   "--name",
                                   name,
                                   "--data-dir",
                                   dir_ + "/" + name,
                                   "--listen-client-urls",
                                   Url(client_ports_[i], tls_),
                                   "--advertise-client-urls",
                                   Url(client_ports_[i], tls_),
                                   "--listen-peer-urls",
                                   Url(peer_ports_[i]),
                                   "--initial-advertise-peer-urls",
                                   Url(peer_ports_[i]),
                                   "--initial-cluster",
                                   cluster,
                                   "--initial-cluster-state",
                                   "new",
                                   "--initial-cluster-token",
                                   "kgr-test",
                                   "--heartbeat-interval",
                                   "50",
                                   "--election-timeout",
                                   "500",
                                   "--log-level",
                                   "warn"};
  if (tls_) {
    const std::string pki = pki_dir();
    argv.insert(argv.end(), {"--cert-file", pki + "/etcd.crt", "--key-file",
                             pki + "/etcd.key", "--trusted-ca-file",
                             pki + "/ca.crt", "--client-cert-auth"});
  }
  pids_[i] = SpawnLogged(argv, dir_ + "/" + name + ".log");
  if (pids_[i] < 0) return InternalError("cannot start " + std::string(kEtcd));
  return OkStatus();
}

Status Etcd::WaitHealthy(const std::vector<std::string>& endpoints,
                         int timeout_ms) {
  EtcdOptions o = ClientOptions();
  o.endpoints = endpoints;
  o.request_timeout_ms = 1000;
  KGR_ASSIGN_OR_RETURN(auto client, EtcdClient::Create(o));
  auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  Status last;
  while (std::chrono::steady_clock::now() < deadline) {
    auto r = client->Range("/kgr-harness-health");
    if (r.ok()) return OkStatus();
    last = r.status();
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return UnavailableError("etcd not healthy (logs in " + dir_ +
                          "): " + last.ToString());
}

Status Etcd::Start() {
  if (client_ports_.empty()) {
    if (tls_) KGR_RETURN_IF_ERROR(Provision());
    for (int i = 0; i < members(); ++i) {
      client_ports_.push_back(FreeLoopbackPort());
      peer_ports_.push_back(FreeLoopbackPort());
    }
  }
  for (int i = 0; i < members(); ++i) KGR_RETURN_IF_ERROR(StartMember(i));
  for (const std::string& e : endpoints()) {
    KGR_RETURN_IF_ERROR(WaitHealthy({e}, kEtcdStartTimeoutMs));
  }
  return OkStatus();
}

void Etcd::Kill(int i) {
  if (pids_[i] <= 0) return;
  ::kill(pids_[i], SIGKILL);
  ::waitpid(pids_[i], nullptr, 0);
  pids_[i] = -1;
}

Status Etcd::Restart(int i) {
  Kill(i);
  KGR_RETURN_IF_ERROR(StartMember(i));
  return WaitHealthy({endpoints()[i]}, kEtcdStartTimeoutMs);
}

void Etcd::Stop() {
  for (int& pid : pids_) {
    if (pid > 0) StopProcess(pid);
    pid = -1;
  }
}

}  // namespace kgr::harness
