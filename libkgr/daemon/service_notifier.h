// What a daemon tells its service manager (systemd, Type=notify): ready,
// reloading, stopping, and the watchdog's keep-alive pings. A no-op when
// NOTIFY_SOCKET is unset (the daemon was not started by systemd, or by a
// unit without Type=notify). Internal to libkgr/daemon/.
#ifndef KGR_DAEMON_SERVICE_NOTIFIER_H_
#define KGR_DAEMON_SERVICE_NOTIFIER_H_

#include <cstdint>
#include <string>

namespace kgr {

class ServiceNotifier {
 public:
  // Reads NOTIFY_SOCKET and the watchdog's interval (WATCHDOG_USEC, for
  // this process if WATCHDOG_PID is set) from the environment.
  ServiceNotifier();

  // READY=1 with a STATUS= line: the daemon serves (and, after a reload,
  // serves with the new settings).
  void Ready(const std::string& status);
  // RELOADING=1: a SIGHUP's reload starts (Ready() ends it).
  void Reloading();
  // STOPPING=1: a clean stop starts.
  void Stopping();
  // WATCHDOG=1 when half the watchdog interval passed since the last ping.
  // Called from the event loop's tick, so a stuck loop stops the pings and
  // systemd restarts the daemon (WatchdogSec= in the unit).
  void Tick(uint64_t now_monotonic_ms);

  bool notifying() const { return notifying_; }
  uint64_t watchdog_interval_ms() const { return watchdog_ms_; }

 private:
  void Send(const std::string& state);

  bool notifying_ = false;
  uint64_t watchdog_ms_ = 0;  // 0: no watchdog
  uint64_t last_ping_ms_ = 0;
};

}  // namespace kgr

#endif  // KGR_DAEMON_SERVICE_NOTIFIER_H_
