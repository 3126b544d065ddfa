// api.users: which local users may use which peers (app_router.h).
#include <pwd.h>

#include <cctype>

#include "daemon/app_router.h"
#include "kgr/app_wire.h"

namespace kgr {
namespace {

StatusOr<uint32_t> UidOf(const std::string& who) {
  bool digits = !who.empty() && who.size() <= 9;
  for (char c : who) digits = digits && std::isdigit(static_cast<uint8_t>(c));
  if (digits) return static_cast<uint32_t>(std::stoul(who));
  const passwd* pw = getpwnam(who.c_str());
  if (pw == nullptr) {
    return InvalidArgumentError("config key \"api.users\": no user named '" +
                                who + "'");
  }
  return static_cast<uint32_t>(pw->pw_uid);
}

}  // namespace

bool AppAccess::Admits(uint32_t uid) const {
  return users.count(uid) > 0 || uid == owner_uid;
}

bool AppAccess::Allows(uint32_t uid, uint32_t peer) const {
  auto it = users.find(uid);
  if (it == users.end()) return uid == owner_uid;
  return !it->second.has_value() || it->second->count(peer) > 0;
}

StatusOr<AppAccess> ParseAppAccess(const nlohmann::json& users,
                                   uint32_t owner_uid) {
  AppAccess a;
  a.owner_uid = owner_uid;
  if (users.is_null()) return a;
  if (!users.is_object()) {
    return InvalidArgumentError("config key \"api.users\": not an object");
  }
  for (const auto& [who, peers] : users.items()) {
    KGR_ASSIGN_OR_RETURN(uint32_t uid, UidOf(who));
    std::string where = "config key \"api.users\" entry '" + who + "': ";
    if (peers.is_string() && peers.get<std::string>() == "*") {
      a.users[uid] = std::nullopt;
      continue;
    }
    if (!peers.is_array()) {
      return InvalidArgumentError(where + "not \"*\" or a list of N_IDs");
    }
    std::set<uint32_t> set;
    for (const auto& p : peers) {
      auto peer = AppPeerField({{"peer", p}}, "peer");
      if (!peer.ok()) {
        return InvalidArgumentError(where +
                                    "not an N_ID (8 hex digits): " + p.dump());
      }
      set.insert(*peer);
    }
    a.users[uid] = std::move(set);
  }
  return a;
}

}  // namespace kgr
