// ParseCommandLine and ParseOrExplain (kgr/cli.h): flags and config keys
// checked against each executable's table of settings.
#include <algorithm>
#include <cstdio>

#include "kgr/bytes.h"
#include "kgr/cli.h"

namespace kgr {
namespace {

constexpr size_t kMaxText = 4096;
constexpr std::string_view kConfigFlag = "config";
constexpr std::string_view kHelpFlag = "help";

std::string Describe(const SettingSpec& s) {
  switch (s.kind) {
    case SettingKind::kString:
      return "must be text of 1 to " +
             std::to_string(s.max ? s.max : kMaxText) +
             " characters, no control characters";
    case SettingKind::kInteger:
      return "must be an integer from " + std::to_string(s.min) + " to " +
             std::to_string(s.max);
    case SettingKind::kBool:
      return "must be true or false";
    case SettingKind::kChoice: {
      std::string list(s.choices);
      std::replace(list.begin(), list.end(), '|', ',');
      size_t pos = 0;
      while ((pos = list.find(',', pos)) != std::string::npos) {
        list.insert(pos + 1, " ");
        pos += 2;
      }
      return "must be one of " + list;
    }
    case SettingKind::kHostPort:
      return "must be host:port with a port from 1 to 65535";
    case SettingKind::kNodeId:
      return "must be an N_ID: 8 hex digits, not 00000000";
    case SettingKind::kNodeIdList:
      return "must be N_IDs (8 hex digits, not 00000000) separated by ','";
    case SettingKind::kObject:
      return "must be an object";
  }
  return "is invalid";
}

// At most ~40 printable characters of `text` for an error line.
std::string Shown(std::string_view text) {
  std::string out;
  for (char c : text.substr(0, text.size() > 40 ? 32 : 40)) {
    out += static_cast<unsigned char>(c) < ' ' || c == 0x7f ? '?' : c;
  }
  if (text.size() > 40) {
    out += "... (" + std::to_string(text.size()) + " characters)";
  }
  return out;
}

Status Bad(std::string_view origin, const SettingSpec& s,
           std::string_view got) {
  return InvalidArgumentError(std::string(origin) + ": " + Describe(s) +
                              " (got " + std::string(got) + ")");
}

std::string FlagOrigin(std::string_view flag) {
  return "flag --" + std::string(flag);
}
std::string KeyOrigin(std::string_view key) {
  return "config key \"" + std::string(key) + "\"";
}

bool ParseDigits(std::string_view t, uint64_t* out) {
  if (t.empty() || t.size() > 20 ||
      t.find_first_not_of("0123456789") != std::string_view::npos) {
    return false;
  }
  uint64_t n = 0;
  for (char c : t) {
    const uint64_t d = static_cast<uint64_t>(c - '0');
    if (n > (UINT64_MAX - d) / 10) return false;
    n = n * 10 + d;
  }
  *out = n;
  return true;
}

bool ChoiceOk(std::string_view choices, std::string_view v) {
  while (!choices.empty()) {
    size_t bar = choices.find('|');
    if (choices.substr(0, bar) == v) return true;
    if (bar == std::string_view::npos) break;
    choices.remove_prefix(bar + 1);
  }
  return false;
}

// N_IDs (8 hex digits each, not 0) separated by ','.
bool ParseIds(std::string_view t, std::vector<uint32_t>* ids) {
  ids->clear();
  while (true) {
    size_t comma = t.find(',');
    Bytes b;
    if (t.substr(0, comma).size() != 8 || !FromHex(t.substr(0, comma), &b)) {
      return false;
    }
    uint32_t id = static_cast<uint32_t>(b[0]) << 24 |
                  static_cast<uint32_t>(b[1]) << 16 |
                  static_cast<uint32_t>(b[2]) << 8 | b[3];
    if (id == 0) return false;
    ids->push_back(id);
    if (comma == std::string_view::npos) return true;
    t.remove_prefix(comma + 1);
  }
}

}  // namespace

// Builds a CommandLine from argv, the config file and the table.
class SettingsParser {
 public:
  explicit SettingsParser(std::span<const SettingSpec> specs) : specs_(specs) {}

  StatusOr<CommandLine> Parse(int argc, char** argv) {
    KGR_RETURN_IF_ERROR(ParseArgv(argc, argv));
    if (switches_.count(std::string(kHelpFlag))) {
      CommandLine::Value& help = out_.values_[std::string(kHelpFlag)];
      help.number = 1;
      help.origin = FlagOrigin(kHelpFlag);
      return std::move(out_);
    }
    auto config = flags_.find(std::string(kConfigFlag));
    if (config != flags_.end()) {
      if (config->second.empty()) {
        return InvalidArgumentError("flag --config: must be a file name");
      }
      auto json = LoadJsonConfig(config->second);
      if (!json.ok()) {
        return InvalidArgumentError("config file: " + json.status().message());
      }
      KGR_RETURN_IF_ERROR(WalkConfig(*json, ""));
    }
    for (const auto& [flag, text] : flags_) {
      if (flag == kConfigFlag) continue;
      const SettingSpec& s = *ByFlag(flag);
      KGR_RETURN_IF_ERROR(FromText(s, text, FlagOrigin(flag)));
    }
    for (const std::string& flag : switches_) {
      CommandLine::Value& v = out_.values_[NameOf(*ByFlag(flag))];
      v = CommandLine::Value();
      v.number = 1;
      v.origin = FlagOrigin(flag);
    }
    for (const SettingSpec& s : specs_) {
      if (s.fallback.empty() || out_.values_.count(NameOf(s))) continue;
      Status st = FromText(s, s.fallback, "");
      if (!st.ok()) return InternalError("bad default: " + st.message());
    }
    return std::move(out_);
  }

 private:
  static std::string NameOf(const SettingSpec& s) {
    return std::string(s.key.empty() ? s.flag : s.key);
  }
  const SettingSpec* ByFlag(std::string_view flag) const {
    for (const SettingSpec& s : specs_) {
      if (!s.flag.empty() && s.flag == flag) return &s;
    }
    return nullptr;
  }

  Status ParseArgv(int argc, char** argv) {
    for (int i = 1; i < argc; ++i) {
      std::string a = argv[i];
      if (a.rfind("--", 0) != 0) {
        if (!out_.command.empty()) {
          return InvalidArgumentError("unexpected argument '" + Shown(a) +
                                      "' (one command at a time)");
        }
        out_.command = a;
        continue;
      }
      std::string name = a.substr(2), value;
      bool has_value = false;
      if (auto eq = name.find('='); eq != std::string::npos) {
        value = name.substr(eq + 1);
        name.resize(eq);
        has_value = true;
      }
      const SettingSpec* s = ByFlag(name);
      bool is_switch =
          name == kHelpFlag || (s != nullptr && s->kind == SettingKind::kBool);
      if (s == nullptr && name != kHelpFlag && name != kConfigFlag) {
        return InvalidArgumentError("unknown flag --" + Shown(name) +
                                    " (see --help)");
      }
      if (flags_.count(name) || switches_.count(name)) {
        return InvalidArgumentError(FlagOrigin(name) + ": given twice");
      }
      if (is_switch) {
        if (has_value) {
          return InvalidArgumentError(FlagOrigin(name) +
                                      ": takes no value (got '" + Shown(value) +
                                      "')");
        }
        switches_.insert(name);
        continue;
      }
      if (!has_value) {
        if (i + 1 >= argc) {
          return InvalidArgumentError(FlagOrigin(name) + ": needs a value");
        }
        value = argv[++i];
      }
      flags_[name] = value;
    }
    return OkStatus();
  }

  // Checks text from a flag or a fallback and stores it under the name.
  Status FromText(const SettingSpec& s, std::string_view t,
                  const std::string& origin) {
    CommandLine::Value v;
    v.origin = origin;
    const std::string got = "'" + Shown(t) + "'";
    switch (s.kind) {
      case SettingKind::kString:
        if (t.empty() || t.size() > (s.max ? s.max : kMaxText) ||
            std::any_of(t.begin(), t.end(), [](char c) {
              return static_cast<unsigned char>(c) < ' ' || c == 0x7f;
            })) {
          return Bad(origin, s, got);
        }
        if (s.check != nullptr) {
          if (Status c = s.check(t); !c.ok()) {
            return InvalidArgumentError(origin + ": " + c.message() + " (got " +
                                        got + ")");
          }
        }
        break;
      case SettingKind::kInteger:
        if (!ParseDigits(t, &v.number) || v.number < s.min ||
            v.number > s.max) {
          return Bad(origin, s, got);
        }
        break;
      case SettingKind::kBool:
        if (t != "true" && t != "false") return Bad(origin, s, got);
        v.number = t == "true";
        break;
      case SettingKind::kChoice:
        if (!ChoiceOk(s.choices, t)) return Bad(origin, s, got);
        break;
      case SettingKind::kHostPort: {
        std::string host;
        int port = 0;
        if (!SplitHostPort(std::string(t), &host, &port).ok()) {
          return Bad(origin, s, got);
        }
        break;
      }
      case SettingKind::kNodeId:
        v.ids.resize(1);
        if (!ParseIds(t, &v.ids) || v.ids.size() != 1) {
          return Bad(origin, s, got);
        }
        break;
      case SettingKind::kNodeIdList:
        if (!ParseIds(t, &v.ids)) return Bad(origin, s, got);
        break;
      case SettingKind::kObject:
        return Bad(origin, s, got);  // config only
    }
    v.text = std::string(t);
    out_.values_[NameOf(s)] = std::move(v);
    return OkStatus();
  }

  // Checks one config value against its row.
  Status FromJson(const SettingSpec& s, const nlohmann::json& j,
                  const std::string& key) {
    const std::string origin = KeyOrigin(key);
    switch (s.kind) {
      case SettingKind::kInteger: {
        KGR_ASSIGN_OR_RETURN(uint64_t n, ConfigInteger(j, key, s.min, s.max));
        CommandLine::Value v;
        v.number = n;
        v.text = std::to_string(n);
        v.origin = origin;
        out_.values_[NameOf(s)] = std::move(v);
        return OkStatus();
      }
      case SettingKind::kBool:
        if (!j.is_boolean()) return Bad(origin, s, Shown(j.dump()));
        return FromText(s, j.get<bool>() ? "true" : "false", origin);
      case SettingKind::kObject: {
        if (!j.is_object()) return Bad(origin, s, Shown(j.dump()));
        CommandLine::Value v;
        v.object = j;
        v.origin = origin;
        out_.values_[NameOf(s)] = std::move(v);
        return OkStatus();
      }
      default:
        if (!j.is_string()) return Bad(origin, s, Shown(j.dump()));
        return FromText(s, j.get<std::string>(), origin);
    }
  }

  // Every key of `obj` (at path `prefix`) must be a row's key, or the
  // parent object of some.
  Status WalkConfig(const nlohmann::json& obj, const std::string& prefix) {
    for (const auto& [name, value] : obj.items()) {
      const std::string key = prefix + name;
      const SettingSpec* row = nullptr;
      bool parent = false;
      std::string allowed;
      for (const SettingSpec& s : specs_) {
        if (s.key.empty()) continue;
        if (s.key == key) row = &s;
        if (s.key.rfind(key + ".", 0) == 0) parent = true;
        if (s.key.rfind(prefix, 0) != 0) continue;
        std::string_view rest = s.key.substr(prefix.size());
        std::string here(rest.substr(0, rest.find('.')));
        if ((" " + allowed + " ").find(" " + here + " ") == std::string::npos) {
          allowed += (allowed.empty() ? "" : " ") + here;
        }
      }
      if (row != nullptr) {
        KGR_RETURN_IF_ERROR(FromJson(*row, value, key));
      } else if (parent) {
        if (!value.is_object()) {
          return InvalidArgumentError(KeyOrigin(key) +
                                      ": must be an object (got " +
                                      Shown(value.dump()) + ")");
        }
        KGR_RETURN_IF_ERROR(WalkConfig(value, key + "."));
      } else {
        return InvalidArgumentError(
            KeyOrigin(key) + ": unknown key (known here: " + allowed + ")");
      }
    }
    return OkStatus();
  }

  std::span<const SettingSpec> specs_;
  CommandLine out_;
  std::map<std::string, std::string> flags_;
  std::set<std::string> switches_;
};

StatusOr<uint64_t> ConfigInteger(const nlohmann::json& value,
                                 std::string_view key, uint64_t min,
                                 uint64_t max) {
  // JSON integers only (a parsed 1e3 or 2.5 is a float); nlohmann keeps
  // non-negative ones unsigned, but a built one may be signed.
  if (value.is_number_unsigned() ||
      (value.is_number_integer() && value.get<int64_t>() >= 0)) {
    uint64_t n = value.get<uint64_t>();
    if (n >= min && n <= max) return n;
  }
  SettingSpec s{.flag = {},
                .key = {},
                .kind = SettingKind::kInteger,
                .min = min,
                .max = max};
  return Bad(KeyOrigin(key), s, Shown(value.dump()));
}

Status ConfigKeyError(std::string_view key, std::string_view why) {
  return InvalidArgumentError(KeyOrigin(key) + ": " + std::string(why));
}

StatusOr<CommandLine> ParseCommandLine(int argc, char** argv,
                                       std::span<const SettingSpec> specs) {
  return SettingsParser(specs).Parse(argc, argv);
}

std::optional<CommandLine> ParseOrExplain(std::string_view program,
                                          std::string_view usage, int argc,
                                          char** argv,
                                          std::span<const SettingSpec> specs,
                                          const std::set<std::string>& commands,
                                          int* exit_code) {
  auto fail = [&](const std::string& why) {
    std::fprintf(stderr, "%.*s: %s\n", static_cast<int>(program.size()),
                 program.data(), why.c_str());
    *exit_code = kExitUsage;
    return std::nullopt;
  };
  const std::string help = " (see " + std::string(program) + " --help)";
  auto cl = ParseCommandLine(argc, argv, specs);
  if (!cl.ok()) {
    std::string why = cl.status().message();
    const std::string generic = " (see --help)";
    if (why.size() >= generic.size() &&
        why.compare(why.size() - generic.size(), generic.size(), generic) ==
            0) {
      why.replace(why.size() - generic.size(), generic.size(), help);
    }
    return fail(why);
  }
  if (cl->Given(kHelpFlag)) {
    std::fwrite(usage.data(), 1, usage.size(), stdout);
    *exit_code = kExitOk;
    return std::nullopt;
  }
  if (cl->command.empty()) return fail("no command given" + help);
  if (!commands.count(cl->command)) {
    std::string list;
    for (const std::string& c : commands)
      list += (list.empty() ? "" : ", ") + c;
    return fail("unknown command '" + Shown(cl->command) + "' (one of " + list +
                ")");
  }
  return std::move(*cl);
}

const CommandLine::Value* CommandLine::Find(std::string_view name) const {
  auto it = values_.find(name);
  return it == values_.end() ? nullptr : &it->second;
}

bool CommandLine::Has(std::string_view name) const {
  return Find(name) != nullptr;
}

bool CommandLine::Given(std::string_view name) const {
  const Value* v = Find(name);
  return v != nullptr && !v->origin.empty();
}

const std::string& CommandLine::Str(std::string_view name) const {
  static const std::string kEmpty;
  const Value* v = Find(name);
  return v ? v->text : kEmpty;
}

uint64_t CommandLine::Int(std::string_view name) const {
  const Value* v = Find(name);
  return v ? v->number : 0;
}

bool CommandLine::Bool(std::string_view name) const { return Int(name) != 0; }

uint32_t CommandLine::Id(std::string_view name) const {
  const Value* v = Find(name);
  return v && !v->ids.empty() ? v->ids.front() : 0;
}

const std::vector<uint32_t>& CommandLine::Ids(std::string_view name) const {
  static const std::vector<uint32_t> kNone;
  const Value* v = Find(name);
  return v ? v->ids : kNone;
}

const nlohmann::json& CommandLine::Object(std::string_view name) const {
  static const nlohmann::json kEmpty = nlohmann::json::object();
  const Value* v = Find(name);
  return v ? v->object : kEmpty;
}

Status CommandLine::Invalid(std::string_view name, std::string_view why) const {
  const Value* v = Find(name);
  std::string origin = v && !v->origin.empty() ? v->origin : std::string(name);
  return InvalidArgumentError(origin + ": " + std::string(why));
}

}  // namespace kgr
