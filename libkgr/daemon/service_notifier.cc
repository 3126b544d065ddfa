#include "daemon/service_notifier.h"

#include <spdlog/spdlog.h>
#include <systemd/sd-daemon.h>

#include <cstdlib>

namespace kgr {

ServiceNotifier::ServiceNotifier() {
  const char* socket = std::getenv("NOTIFY_SOCKET");
  notifying_ = socket != nullptr && socket[0] != '\0';
  uint64_t usec = 0;
  if (notifying_ && sd_watchdog_enabled(/*unset_environment=*/0, &usec) > 0) {
    watchdog_ms_ = usec / 1000;
  }
}

void ServiceNotifier::Send(const std::string& state) {
  if (!notifying_) return;
  int r = sd_notify(/*unset_environment=*/0, state.c_str());
  if (r < 0) spdlog::warn("sd_notify: error {}", -r);
}

void ServiceNotifier::Ready(const std::string& status) {
  Send("READY=1\nSTATUS=" + status);
}

void ServiceNotifier::Reloading() { Send("RELOADING=1"); }

void ServiceNotifier::Stopping() { Send("STOPPING=1"); }

void ServiceNotifier::Tick(uint64_t now_monotonic_ms) {
  if (watchdog_ms_ == 0) return;
  if (last_ping_ms_ != 0 &&
      now_monotonic_ms - last_ping_ms_ < watchdog_ms_ / 2) {
    return;
  }
  last_ping_ms_ = now_monotonic_ms;
  Send("WATCHDOG=1");
}

}  // namespace kgr
