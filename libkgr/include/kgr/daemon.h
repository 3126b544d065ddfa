// The daemon layer (libkgr/daemon/): the wiring of record stores, MQTT
// transport, TPM, frame counter file and control socket behind the kgr-ks,
// kgr-node and kgr-ac commands, so that each executable's main.cc only turns
// flags and config into options and calls one function per command. One
// header per role (ks_daemon.h, node_daemon.h, ac_tool.h), each executable
// includes its own; this one holds the options they share.
#ifndef KGR_DAEMON_H_
#define KGR_DAEMON_H_

#include <cstdint>
#include <cstdio>
#include <functional>
#include <set>
#include <span>
#include <string>
#include <string_view>

#include "kgr/cli.h"
#include "kgr/mqtt.h"
#include "kgr/status.h"

namespace kgr {

// The broker and how to reach it.
struct BrokerOptions {
  std::string address;  // host:port; kgr-node: empty means its BA
  MqttClient client = MqttClient::kMosquitto;
  int qos = 1;
  // PEM: the KED CA, this party's certificate and key (kgr-node keeps its
  // own in <state_dir>/tls/ and leaves these empty).
  std::string ca_file, cert_file, key_file;
};

// What the KS and node daemons share.
struct DaemonOptions {
  std::string state_dir;  // stores, NV auth file, counter, control socket
  std::string tcti;       // resolved (ResolveTcti); "none": software store
  bool pcr_policy = false;
  uint64_t journal_prealloc_kb = 256;
  std::string log_level = "info";  // debug, info, warn, error
  // `run`: the Prometheus endpoint's host:port (docs/metrics.md); empty:
  // none.
  std::string metrics_listen;
  BrokerOptions broker;
};

// From the shared settings rows of cli.h (broker, mqtt_client, mqtt_qos,
// tls.*); a row the program does not have leaves its field empty.
StatusOr<BrokerOptions> BrokerOptionsFrom(const CommandLine& c);
// The above and state_dir, tcti, pcr_policy, journal_prealloc_kb, log_level,
// metrics_listen. An empty
// state directory is the caller's to refuse.
StatusOr<DaemonOptions> DaemonOptionsFrom(const CommandLine& c);

// Logging of a kgr executable at `level`: to the systemd journal with
// structured fields (PRIORITY, SYSLOG_IDENTIFIER=<program>, KGR_ROLE,
// KGR_NODE once known) when stderr is the journal's stream (JOURNAL_STREAM),
// else SetupLogging's lines on stderr.
void SetupDaemonLogging(std::string_view program, const std::string& level);
// Changes the level of the logging set up above (a SIGHUP's reload).
void SetLogLevel(const std::string& level);

// A daemon's SIGHUP reload: the options of the same flags and config file,
// read again (ProgramMain sets it before it runs a command; unset: the
// daemon was not started by ProgramMain and does not reload).
template <typename Options>
std::function<StatusOr<Options>()>& OptionsReloader() {
  static std::function<StatusOr<Options>()> reload;
  return reload;
}

template <typename T>
struct StatusOrValue;
template <typename T>
struct StatusOrValue<StatusOr<T>> {
  using type = T;
};

// `doctor`: asks the TPM named by o.tcti what it implements and has room
// for, prints in plain words whether it can run kgr (as the Key Server when
// `key_server`, else as an N node) and what is missing; INTERNAL naming
// what is missing if it cannot (docs/tpm.md).
Status TpmDoctor(const DaemonOptions& o, bool key_server);

// `wipe`: decommissioning. Asks for the typed word "wipe" on a terminal
// (without one, INVALID_ARGUMENT unless `yes`), then erases kgr's NV
// indices, evicts its ANK and KEDK (the SRK stays: docs/tpm.md) and removes
// kgr's files from o.state_dir. Refuses while a daemon holds the directory.
Status Wipe(const DaemonOptions& o, bool yes);

// The main() of a kgr executable: ParseOrExplain (--help, one line for a
// bad flag or config value), then `load(flags)` -> StatusOr<Options> (an
// error: "<program>: <why>" on stderr, kExitUsage), logging at log_level,
// (SetupDaemonLogging), OptionsReloader<Options>() set to parse argv and
// the config file again and `load` them, then `run(flags, options)` ->
// Status, whose error is printed as
// "<program> <command>: <status>". Returns the exit code (ExitCodeFor).
template <typename Load, typename Run>
int ProgramMain(std::string_view program, std::string_view usage, int argc,
                char** argv, std::span<const SettingSpec> specs,
                const std::set<std::string>& commands, Load load, Run run) {
  const int name_len = static_cast<int>(program.size());
  int exit_code = kExitUsage;
  auto flags =
      ParseOrExplain(program, usage, argc, argv, specs, commands, &exit_code);
  if (!flags) return exit_code;
  auto options = load(*flags);
  if (!options.ok()) {
    std::fprintf(stderr, "%.*s: %s\n", name_len, program.data(),
                 options.status().message().c_str());
    return kExitUsage;
  }
  SetupDaemonLogging(program, flags->Str("log_level"));
  using Options = typename StatusOrValue<decltype(options)>::type;
  OptionsReloader<Options>() = [=]() -> StatusOr<Options> {
    auto again = ParseCommandLine(argc, argv, specs);
    if (!again.ok()) return again.status();
    return load(*again);
  };
  Status st = run(*flags, *options);
  if (!st.ok()) {
    std::fprintf(stderr, "%.*s %s: %s\n", name_len, program.data(),
                 flags->command.c_str(), st.ToString().c_str());
  }
  return ExitCodeFor(st);
}

}  // namespace kgr

#endif  // KGR_DAEMON_H_
