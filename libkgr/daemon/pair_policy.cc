// The config key policy.pairs of kgr-node.
#include <string>

#include "kgr/cli.h"
#include "kgr/credentials.h"
#include "kgr/node_daemon.h"

namespace kgr {

StatusOr<std::map<uint32_t, KeyPolicy>> ParsePairPolicy(
    const nlohmann::json& pairs, const KeyPolicy& node_wide) {
  std::map<uint32_t, KeyPolicy> out;
  for (const auto& [peer, limits] : pairs.items()) {
    const std::string key = "policy.pairs." + peer;
    auto id = ParseNodeId(peer);
    if (!id.ok() || *id == 0) {
      return ConfigKeyError(key, "the key must be an N_ID (8 hex digits)");
    }
    if (!limits.is_object()) return ConfigKeyError(key, "must be an object");
    KeyPolicy kp = node_wide;
    for (const auto& [name, value] : limits.items()) {
      uint64_t* field = name == "max_frames"  ? &kp.max_frames
                        : name == "max_bytes" ? &kp.max_bytes
                        : name == "max_age_s" ? &kp.max_age_ms
                                              : nullptr;
      if (field == nullptr) {
        return ConfigKeyError(key + "." + name,
                              "unknown key (known here: max_frames "
                              "max_bytes max_age_s)");
      }
      KGR_ASSIGN_OR_RETURN(
          *field, ConfigInteger(value, key + "." + name, 0, kMaxNumberSetting));
      if (name == "max_age_s") *field *= 1000;
    }
    out[*id] = kp;
  }
  return out;
}

}  // namespace kgr
