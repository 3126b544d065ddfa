#include "kgr/cli.h"

#include <signal.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <fstream>
#include <sstream>
#include <thread>

namespace kgr {

int ExitCodeFor(const Status& s) {
  switch (s.code()) {
    case StatusCode::kOk:
      return kExitOk;
    case StatusCode::kInvalidArgument:
      return kExitUsage;
    case StatusCode::kUnavailable:
    case StatusCode::kDeadlineExceeded:
      return kExitUnavailable;
    case StatusCode::kPermissionDenied:
    case StatusCode::kUnauthenticated:
    case StatusCode::kFailedPrecondition:
      return kExitRefused;
    default:
      return kExitFailed;
  }
}

StatusOr<Flags> ParseFlags(int argc, char** argv,
                           const std::set<std::string>& value_names,
                           const std::set<std::string>& switch_names) {
  Flags f;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a.rfind("--", 0) != 0) {
      if (f.command.empty()) {
        f.command = a;
        continue;
      }
      return InvalidArgumentError("unexpected argument '" + a + "'");
    }
    std::string name = a.substr(2), value;
    bool has_value = false;
    if (auto eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      has_value = true;
    }
    if (switch_names.count(name)) {
      if (has_value)
        return InvalidArgumentError("--" + name + " takes no value");
      f.switches.insert(name);
    } else if (value_names.count(name)) {
      if (!has_value) {
        if (i + 1 >= argc)
          return InvalidArgumentError("--" + name + " needs a value");
        value = argv[++i];
      }
      f.values[name] = value;
    } else {
      return InvalidArgumentError("unknown flag --" + name + " (see --help)");
    }
  }
  return f;
}

StatusOr<nlohmann::json> LoadJsonConfig(const std::string& path) {
  if (path.empty()) return nlohmann::json::object();
  std::ifstream in(path);
  if (!in) return NotFoundError("cannot read config file " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  nlohmann::json j = nlohmann::json::parse(ss.str(), nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return InvalidArgumentError(path + ": not a JSON object");
  }
  return j;
}

std::string Setting(const Flags& flags, const nlohmann::json& config,
                    const std::string& flag, const std::string& key,
                    const std::string& fallback) {
  if (auto it = flags.values.find(flag); it != flags.values.end()) {
    return it->second;
  }
  const nlohmann::json* node = &config;
  std::stringstream path(key);
  std::string part;
  while (std::getline(path, part, '.')) {
    if (!node->is_object() || !node->contains(part)) return fallback;
    node = &(*node)[part];
  }
  if (node->is_string()) return node->get<std::string>();
  if (node->is_number_integer()) return std::to_string(node->get<long long>());
  if (node->is_boolean()) return node->get<bool>() ? "true" : "false";
  return fallback;
}

StatusOr<uint64_t> NumberSetting(const Flags& flags,
                                 const nlohmann::json& config,
                                 const std::string& flag,
                                 const std::string& key,
                                 const std::string& fallback, uint64_t max) {
  const std::string v = Setting(flags, config, flag, key, fallback);
  if (v.empty() || v.size() > 15 ||
      v.find_first_not_of("0123456789") != std::string::npos) {
    return InvalidArgumentError(key + " must be a number (decimal digits)");
  }
  const uint64_t n = std::stoull(v);
  if (n > max) {
    return InvalidArgumentError(key + ": at most " + std::to_string(max));
  }
  return n;
}

void SetupLogging(const std::string& level) {
  auto logger = spdlog::stderr_color_mt("kgr");
  spdlog::set_default_logger(logger);
  spdlog::set_pattern("[%H:%M:%S.%e] [%^%l%$] %v");
  spdlog::set_level(spdlog::level::from_str(level.empty() ? "info" : level));
}

void StopLoopOnSignals(EventLoop& loop) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  std::thread([set, &loop] {
    int sig = 0;
    sigwait(&set, &sig);
    spdlog::info("signal {}: stopping", sig);
    loop.Stop();
  }).detach();
}

Status SplitHostPort(const std::string& address, std::string* host, int* port) {
  auto colon = address.rfind(':');
  if (colon == std::string::npos || colon == 0) {
    return InvalidArgumentError("broker address must be host:port, got '" +
                                address + "'");
  }
  *host = address.substr(0, colon);
  try {
    size_t used = 0;
    *port = std::stoi(address.substr(colon + 1), &used);
    if (used != address.size() - colon - 1 || *port <= 0 || *port > 65535) {
      throw std::out_of_range("port");
    }
  } catch (const std::exception&) {
    return InvalidArgumentError("bad port in '" + address + "'");
  }
  return OkStatus();
}

}  // namespace kgr
