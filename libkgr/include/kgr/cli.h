// Shared plumbing of the kgr-ks, kgr-ac and kgr-node executables: flags,
// JSON config files, logging, exit codes, stop signals.
#ifndef KGR_CLI_H_
#define KGR_CLI_H_

#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "kgr/event_loop.h"
#include "kgr/status.h"

namespace kgr {

// Exit codes of every kgr executable (documented in each --help).
enum ExitCode : int {
  kExitOk = 0,
  kExitFailed = 1,       // the operation failed (see the message)
  kExitUsage = 2,        // bad flags or config
  kExitUnavailable = 3,  // broker, TPM or daemon unreachable; timeout
  kExitRefused = 4,      // refused: not allowed, not registered, revoked
};
int ExitCodeFor(const Status& status);

struct Flags {
  std::string command;                        // first positional argument
  std::map<std::string, std::string> values;  // --name value | --name=value
  std::set<std::string> switches;             // boolean --name
  bool Has(const std::string& name) const {
    return values.count(name) != 0 || switches.count(name) != 0;
  }
};
// `switch_names` are the flags that take no value. INVALID_ARGUMENT on a
// flag outside `value_names` and `switch_names`.
StatusOr<Flags> ParseFlags(int argc, char** argv,
                           const std::set<std::string>& value_names,
                           const std::set<std::string>& switch_names);

// Reads a JSON object from `path`; an empty path gives {}.
StatusOr<nlohmann::json> LoadJsonConfig(const std::string& path);

// A setting: the flag if given, else config[key] (dotted path "a.b"), else
// `fallback`.
std::string Setting(const Flags& flags, const nlohmann::json& config,
                    const std::string& flag, const std::string& key,
                    const std::string& fallback);

// The same for a non-negative integer: INVALID_ARGUMENT naming `key` unless
// the value is all decimal digits and at most `max`.
inline constexpr uint64_t kMaxNumberSetting = 999'999'999'999'999;  // 15 digits
StatusOr<uint64_t> NumberSetting(const Flags& flags,
                                 const nlohmann::json& config,
                                 const std::string& flag,
                                 const std::string& key,
                                 const std::string& fallback,
                                 uint64_t max = kMaxNumberSetting);

// spdlog to stderr, "[time] [level] message"; level from "debug", "info",
// "warn", "error". Never logs secrets: callers don't pass any.
void SetupLogging(const std::string& level);

// SIGTERM and SIGINT stop `loop` (handled on a dedicated thread with
// sigwait; call before starting any other thread).
void StopLoopOnSignals(EventLoop& loop);

// Splits "host:port"; INVALID_ARGUMENT if malformed.
Status SplitHostPort(const std::string& address, std::string* host, int* port);

}  // namespace kgr

#endif  // KGR_CLI_H_
