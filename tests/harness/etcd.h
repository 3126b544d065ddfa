// A real etcd (1 or 3 members) on free loopback ports for integration
// tests: /usr/bin/etcd started by PID, each member's data under
// DIR/<name>, its output appended to DIR/<name>.log.
//
// Not thread-safe; one test thread drives it.
#ifndef KGR_TESTS_HARNESS_ETCD_H_
#define KGR_TESTS_HARNESS_ETCD_H_

#include <string>
#include <vector>

#include "kgr/cluster.h"
#include "kgr/status.h"

namespace kgr::harness {

class Etcd {
 public:
  // `dir` must exist; it is not removed (the caller owns it). With `tls`,
  // the client URLs are https with client-certificate authentication:
  // DIR/pki/ holds a CA (make-ca.sh), the members' certificate "etcd"
  // (SAN 127.0.0.1) and a client certificate "ks", both signed by it.
  Etcd(std::string dir, int members, bool tls = false);
  ~Etcd();  // Stop()
  Etcd(const Etcd&) = delete;
  Etcd& operator=(const Etcd&) = delete;

  // Picks the ports (first call), starts every member and waits until the
  // cluster answers a linearizable read (a leader is elected).
  Status Start();
  // SIGKILL of member `i` (no clean shutdown), reaped.
  void Kill(int i);
  // Starts member `i` again on its ports and data (after Kill); waits until
  // it answers.
  Status Restart(int i);
  void Stop();

  int members() const { return static_cast<int>(pids_.size()); }
  int pid(int i) const { return pids_[i]; }
  // host:port of each member's client URL.
  std::vector<std::string> endpoints() const;
  // etcd://<every endpoint>/<prefix without leading slash>
  std::string StateUrl(const std::string& prefix) const;
  // With tls: the CA and client certificate above in tls.
  EtcdOptions ClientOptions() const;
  std::string pki_dir() const { return dir_ + "/pki"; }

 private:
  Status Provision();
  Status StartMember(int i);
  Status WaitHealthy(const std::vector<std::string>& endpoints, int timeout_ms);

  std::string dir_;
  bool tls_ = false;
  std::vector<int> client_ports_, peer_ports_, pids_;
};

}  // namespace kgr::harness

#endif  // KGR_TESTS_HARNESS_ETCD_H_
