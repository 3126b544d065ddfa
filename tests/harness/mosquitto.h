// A real TLS Mosquitto for integration tests.
//
// Everything lives under one directory (e.g. MakeTempDir("mqtt")):
//   DIR/pki/          CA, broker and client certificates (provisioning/*.sh)
//   DIR/conf/         mosquitto.conf and acl (broker-config/render.sh)
//   DIR/mosquitto.log the broker's stdout and stderr, appended across restarts
//   DIR/provisioning.log  output of the provisioning scripts
// Mosquitto started as root drops to user "mosquitto"; Start() therefore
// makes DIR, DIR/pki and DIR/conf mode 0755 (DIR's parents must be
// traversable by that user: /tmp is). The broker key is 0640 group
// mosquitto; client keys stay 0600.
//
// Not thread-safe; one test thread drives it.
#ifndef KGR_TESTS_HARNESS_MOSQUITTO_H_
#define KGR_TESTS_HARNESS_MOSQUITTO_H_

#include <string>
#include <vector>

#include "kgr/mqtt.h"
#include "kgr/status.h"

namespace kgr::harness {

struct ClientCert {
  std::string cert_file;
  std::string key_file;
};

// Runs `bash KGR_SOURCE_DIR/provisioning/<script> args...`, appending its
// output to `log_file` (if not empty). INTERNAL with the output's tail if it
// exits non-zero.
Status RunProvisioning(const std::string& script,
                       const std::vector<std::string>& args,
                       const std::string& log_file = "");

class Mosquitto {
 public:
  // `dir` must exist; it is not removed (the caller owns it).
  explicit Mosquitto(std::string dir);
  ~Mosquitto();  // Stop()
  Mosquitto(const Mosquitto&) = delete;
  Mosquitto& operator=(const Mosquitto&) = delete;

  // First call: makes the CA and the broker certificate and picks a free
  // loopback port. Every call: renders the config, starts
  // /usr/sbin/mosquitto and waits until the port accepts connections.
  Status Start();
  // Stop() then Start() on the same port (sessions are lost: persistence
  // is off).
  Status Restart();
  // SIGTERM (then SIGKILL) by PID; no-op when not running.
  void Stop();

  bool running() const { return pid_ > 0; }
  int pid() const { return pid_; }
  int port() const { return port_; }
  const std::string& dir() const { return dir_; }
  std::string pki_dir() const { return dir_ + "/pki"; }
  std::string ca_file() const { return pki_dir() + "/ca.crt"; }
  std::string log_file() const { return dir_ + "/mosquitto.log"; }

  // Issues (or reuses) DIR/pki/<cn>.crt/.key signed by this broker's CA.
  // `role` as for provisioning/issue-cert.sh: ks, ac, node, broker, or
  // empty to derive it from `cn`.
  StatusOr<ClientCert> IssueClient(const std::string& cn,
                                   const std::string& role = "");
  // Options for a client `cn` of this broker: 127.0.0.1:port(), TLS with
  // ca_file() and a certificate from IssueClient(cn, role), client_id = cn.
  StatusOr<MqttOptions> ClientOptions(const std::string& cn,
                                      const std::string& role = "");

 private:
  Status Provision();
  std::string LogTail() const;

  std::string dir_;
  int port_ = -1;
  int pid_ = -1;
  bool provisioned_ = false;
};

}  // namespace kgr::harness

#endif  // KGR_TESTS_HARNESS_MOSQUITTO_H_
