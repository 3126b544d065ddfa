// A daemon's SIGHUP reload (docs/operations.md "Reload"): which settings
// take effect without a restart. Internal to libkgr/daemon/.
#ifndef KGR_DAEMON_RELOAD_H_
#define KGR_DAEMON_RELOAD_H_

#include <string>
#include <vector>

#include "kgr/daemon.h"

namespace kgr {

// The config keys of the settings shared by both daemons that only a
// restart applies and that differ between the running options and those
// read again (state_dir, tcti, broker, mqtt_client, mqtt_qos, tls.*,
// pcr_policy, journal_prealloc_kb). log_level reloads.
std::vector<std::string> RestartOnlyChanges(const DaemonOptions& running,
                                            const DaemonOptions& loaded);

// Reads the options again (OptionsReloader<Options>()), or the one error
// line why they cannot be: a missing or bad config file, a bad value.
template <typename Options>
StatusOr<Options> ReloadOptions() {
  auto& reload = OptionsReloader<Options>();
  if (!reload) return FailedPreconditionError("no settings to read again");
  return reload();
}

// Logs that a reload was refused: one error line, the running settings stay.
void LogReloadRefused(const char* who, const Status& why);
// Logs the restart-only settings that changed (a warning), if any.
void LogRestartOnly(const char* who, const std::vector<std::string>& keys);

}  // namespace kgr

#endif  // KGR_DAEMON_RELOAD_H_
