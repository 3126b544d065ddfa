// Swtpm: a real swtpm (TPM 2.0 simulator) for integration tests, listening
// on a free loopback port pair, its state in a directory the caller owns
// (and removes). Stopped by PID in Stop() or the destructor. Not
// thread-safe.
#ifndef KGR_TESTS_HARNESS_SWTPM_H_
#define KGR_TESTS_HARNESS_SWTPM_H_

#include <string>

namespace kgr::harness {

class Swtpm {
 public:
  // `state_dir` is created if missing; swtpm's log goes to
  // `state_dir`/swtpm.log.
  explicit Swtpm(std::string state_dir);
  ~Swtpm();  // Stop()
  Swtpm(const Swtpm&) = delete;
  Swtpm& operator=(const Swtpm&) = delete;

  // Starts `swtpm socket --tpm2 ... --flags not-need-init,startup-clear`
  // and waits until its server port accepts connections. False (see
  // error()) if it does not come up.
  bool Start();
  // SIGTERM (then SIGKILL) by PID and reap. No-op when not running.
  void Stop();
  // Stop + Start on the same state directory: persistent objects and NV
  // survive. The ports (and so tcti()) may change.
  bool Restart();

  // "swtpm:host=127.0.0.1,port=P", for TpmOptions::tcti / TPM2TOOLS_TCTI.
  std::string tcti() const;
  int port() const { return port_; }
  int pid() const { return pid_; }
  bool running() const { return pid_ > 0; }
  const std::string& state_dir() const { return state_dir_; }
  const std::string& error() const { return error_; }

 private:
  bool StartOnce();

  std::string state_dir_;
  int pid_ = -1;
  int port_ = -1;
  std::string error_;
};

}  // namespace kgr::harness

#endif  // KGR_TESTS_HARNESS_SWTPM_H_
