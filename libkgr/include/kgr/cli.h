// Shared plumbing of the kgr-ks, kgr-ac and kgr-node executables: flags and
// JSON config files (one strict, table-driven layer), logging, exit codes,
// stop signals, output files.
#ifndef KGR_CLI_H_
#define KGR_CLI_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "kgr/event_loop.h"
#include "kgr/filesystem.h"
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

// What a setting's value must be. Flags are text; config values must have
// the JSON type named here (no number as a string or the other way round).
enum class SettingKind {
  kString,      // text of 1..max characters (0: 4096), no control chars
  kInteger,     // a whole number from min to max: digits only in a flag,
                // a JSON integer in the config (no fraction or exponent)
  kBool,        // config: true or false; flag: a switch (takes no value)
  kChoice,      // one of `choices` ("a|b|c")
  kHostPort,    // host:port, port 1..65535
  kNodeId,      // 8 hex digits, not 00000000
  kNodeIdList,  // N_IDs separated by ','
  kObject,      // config only: a JSON object the caller checks itself
};

// One row of an executable's table of settings.
struct SettingSpec {
  std::string_view flag;  // without "--"; empty: config file only
  std::string_view key;   // config key, "a.b" nested; empty: flag only
  SettingKind kind = SettingKind::kString;
  std::string_view fallback = {};  // when neither is given; empty: unset
  uint64_t min = 0;
  uint64_t max = 0;               // kInteger: the range; kString: max length
  std::string_view choices = {};  // kChoice
  // kString: a further check of the text (e.g. ValidateTopicPrefix); its
  // message says what is allowed.
  Status (*check)(std::string_view) = nullptr;
};

// Rows the executables share (same flag, key, range and default).
inline constexpr SettingSpec kStateDirSetting = {.flag = "state-dir",
                                                 .key = "state_dir"};
inline constexpr SettingSpec kTctiSetting = {.flag = "tcti", .key = "tcti"};
inline constexpr SettingSpec kBrokerSetting = {.flag = "broker",
                                               .key = "broker",
                                               .kind = SettingKind::kHostPort,
                                               .fallback = "127.0.0.1:8883"};
inline constexpr SettingSpec kTlsCaSetting = {.flag = "ca",
                                              .key = "tls.ca_file"};
inline constexpr SettingSpec kTlsCertSetting = {.flag = "cert",
                                                .key = "tls.cert_file"};
inline constexpr SettingSpec kTlsKeySetting = {.flag = "key",
                                               .key = "tls.key_file"};
inline constexpr SettingSpec kMqttClientSetting = {.flag = "mqtt-client",
                                                   .key = "mqtt_client",
                                                   .kind = SettingKind::kChoice,
                                                   .fallback = "mosquitto",
                                                   .choices = "mosquitto|paho"};
// MQTT QoS of every publish and subscription (MqttOptions::qos). 2 is not
// offered: kgr retransmits end to end with idempotent request ids, so
// exactly-once delivery buys nothing and costs two more packets per
// message. QoS 0 trade-offs: docs/reliability.md, figures:
// docs/performance.md.
inline constexpr SettingSpec kMqttQosSetting = {.flag = "mqtt-qos",
                                                .key = "mqtt_qos",
                                                .kind = SettingKind::kInteger,
                                                .fallback = "1",
                                                .min = 0,
                                                .max = 1};
inline constexpr SettingSpec kLogLevelSetting = {
    .flag = "log-level",
    .key = "log_level",
    .kind = SettingKind::kChoice,
    .fallback = "info",
    .choices = "debug|info|warn|error"};
inline constexpr SettingSpec kTimeoutSetting = {.flag = "timeout-ms",
                                                .key = "timeout_ms",
                                                .kind = SettingKind::kInteger,
                                                .fallback = "10000",
                                                .min = 1,
                                                .max = 3'600'000};
inline constexpr SettingSpec kJournalPreallocSetting = {
    .flag = "journal-prealloc-kb",
    .key = "journal_prealloc_kb",
    .kind = SettingKind::kInteger,
    .fallback = "256",
    .max = 4096};
inline constexpr SettingSpec kPcrPolicySetting = {
    .flag = "pcr-policy", .key = "pcr_policy", .kind = SettingKind::kBool};
inline constexpr SettingSpec kJsonSetting = {
    .flag = "json", .key = {}, .kind = SettingKind::kBool};

// The validated settings of one invocation. `name` is a setting's config
// key, or its flag for flag-only settings.
class CommandLine {
 public:
  std::string command;  // the first positional argument

  bool Has(std::string_view name) const;    // given, or has a fallback
  bool Given(std::string_view name) const;  // given as flag or in config
  // "" / 0 / false / empty when unset.
  const std::string& Str(std::string_view name) const;
  uint64_t Int(std::string_view name) const;
  bool Bool(std::string_view name) const;
  uint32_t Id(std::string_view name) const;
  const std::vector<uint32_t>& Ids(std::string_view name) const;
  const nlohmann::json& Object(std::string_view name) const;

  // INVALID_ARGUMENT naming where `name` came from, for checks across
  // settings: `flag --x: <why>` or `config key "x": <why>`.
  Status Invalid(std::string_view name, std::string_view why) const;

 private:
  friend class SettingsParser;
  struct Value {
    std::string text;
    uint64_t number = 0;
    std::vector<uint32_t> ids;
    nlohmann::json object;
    std::string origin;  // `flag --x` or `config key "x"`; empty: fallback
  };
  const Value* Find(std::string_view name) const;
  std::map<std::string, Value, std::less<>> values_;
};

// Parses argv (command, --flag value, --flag=value, switches) and the JSON
// config file of --config against `specs`: every value is checked for type
// and range, every config key must be in the table, no flag may repeat.
// --config and --help are always accepted. The error is one line naming
// the flag or config key and what is allowed (INVALID_ARGUMENT), e.g.
//   config key "timeout_ms": must be an integer from 1 to 3600000 (got 1e30)
StatusOr<CommandLine> ParseCommandLine(int argc, char** argv,
                                       std::span<const SettingSpec> specs);

// The preamble of each executable's main: parses (as above), prints usage
// to stdout for --help, checks the command is one of `commands`. On
// anything else prints ONE line "<program>: <why>" to stderr and returns
// nullopt with *exit_code set (kExitOk after --help, else kExitUsage).
std::optional<CommandLine> ParseOrExplain(std::string_view program,
                                          std::string_view usage, int argc,
                                          char** argv,
                                          std::span<const SettingSpec> specs,
                                          const std::set<std::string>& commands,
                                          int* exit_code);

// The largest number most integer settings take (15 digits).
inline constexpr uint64_t kMaxNumberSetting = 999'999'999'999'999;

// One config value as a kInteger in [min, max]; INVALID_ARGUMENT
// `config key "<key>": must be ...` otherwise. For objects the caller
// checks itself (kObject).
StatusOr<uint64_t> ConfigInteger(const nlohmann::json& value,
                                 std::string_view key, uint64_t min,
                                 uint64_t max);

// INVALID_ARGUMENT `config key "<key>": <why>`.
Status ConfigKeyError(std::string_view key, std::string_view why);

// Reads a JSON object from `path`; an empty path gives {}.
StatusOr<nlohmann::json> LoadJsonConfig(const std::string& path);

// spdlog to stderr, "[time] [level] message"; level from "debug", "info",
// "warn", "error". Never logs secrets: callers don't pass any. Also
// silences tpm2-tss's own logging to stderr (TSS2_LOG=all+NONE unless the
// environment sets TSS2_LOG): TPM errors are reported as kgr's one line.
void SetupLogging(const std::string& level);

// SIGTERM and SIGINT stop `loop` (handled on a dedicated thread with
// sigwait; call before starting any other thread, or block them and
// SIGHUP in every thread first). With `on_hangup`, each SIGHUP runs it on
// `loop` (a daemon's reload); without, SIGHUP keeps its default action.
void StopLoopOnSignals(EventLoop& loop,
                       std::function<void()> on_hangup = nullptr);

// Splits "host:port"; INVALID_ARGUMENT if malformed (empty host or one with
// spaces or control characters, port not 1..65535).
Status SplitHostPort(const std::string& address, std::string* host, int* port);

// An output file written in two steps, so that a command can find out that
// it cannot write its output before it does anything it cannot undo.
// Stage() refuses a `path` that is a directory, creates `path`.tmp next to
// it and fills it with `reserve` bytes (a missing or read-only directory or
// a full disk shows now); Commit() replaces its content with `data`, syncs
// it and renames it over `path` (the directory synced). An uncommitted
// StagedFile removes its temporary when destroyed.
class StagedFile {
 public:
  static StatusOr<std::unique_ptr<StagedFile>> Stage(FileSystem& fs,
                                                     const std::string& path,
                                                     int mode, size_t reserve);
  ~StagedFile();
  StagedFile(const StagedFile&) = delete;
  StagedFile& operator=(const StagedFile&) = delete;
  Status Commit(std::span<const uint8_t> data);
  const std::string& path() const { return path_; }

 private:
  StagedFile(FileSystem& fs, std::string path, int mode)
      : fs_(fs), path_(std::move(path)), mode_(mode) {}
  FileSystem& fs_;
  std::string path_;
  int mode_;
  bool committed_ = false;
};

}  // namespace kgr

#endif  // KGR_CLI_H_
