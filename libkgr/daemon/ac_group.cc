// kgr-ac group create | add | remove | list | delete.
#include <algorithm>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "daemon/ac_session.h"
#include "kgr/group_frames.h"
#include "kgr/topic.h"

namespace kgr {
namespace {

StatusOr<std::string> NameOf(const AcArgs& a, std::string_view what) {
  if (!a.group) {
    return InvalidArgumentError("group " + std::string(what) +
                                " needs --name GROUP");
  }
  KGR_RETURN_IF_ERROR(ValidateGroupName(*a.group));
  return *a.group;
}

StatusOr<GroupMode> ModeOf(const AcArgs& a) {
  if (a.group_mode == "group-key") return GroupMode::kGroupKey;
  if (a.group_mode == "sender-auth") return GroupMode::kSenderAuth;
  return InvalidArgumentError("--mode: group-key or sender-auth (got '" +
                              a.group_mode + "')");
}

const char* ModeName(GroupMode m) {
  return m == GroupMode::kSenderAuth ? "sender-auth" : "group-key";
}

// `members` in requests of at most kMaxGroupRequestMembers each.
std::vector<std::vector<uint32_t>> Split(const std::vector<uint32_t>& members) {
  std::vector<std::vector<uint32_t>> out;
  for (size_t i = 0; i < members.size(); i += kMaxGroupRequestMembers) {
    const size_t end = std::min(members.size(), i + kMaxGroupRequestMembers);
    out.emplace_back(members.begin() + i, members.begin() + end);
  }
  return out;
}

StatusOr<AcGroupMembersAns> ChangeMembers(AcSession& session,
                                          const std::string& name, bool add,
                                          std::vector<uint32_t> members) {
  AcGroupMembersReq req{name, static_cast<uint8_t>(add ? 1 : 0),
                        std::move(members)};
  return session.Call<StatusOr<AcGroupMembersAns>>(
      [&](AcClient& c, auto done) { c.GroupMembers(req, done); });
}

Status Create(AcSession& session, const AcArgs& a) {
  KGR_ASSIGN_OR_RETURN(std::string name, NameOf(a, "create"));
  KGR_ASSIGN_OR_RETURN(GroupMode mode, ModeOf(a));
  const std::vector<uint32_t> all = a.members.value_or(std::vector<uint32_t>{});
  if (all.size() > kMaxGroupMembers) {
    return InvalidArgumentError("--members: at most " +
                                std::to_string(kMaxGroupMembers));
  }
  auto parts = Split(all);
  AcGroupCreateReq req{name, mode, a.rekey_every_s,
                       parts.empty() ? std::vector<uint32_t>{} : parts[0]};
  auto ans = session.Call<StatusOr<AcGroupCreateAns>>(
      [&](AcClient& c, auto done) { c.GroupCreate(req, done); });
  if (!ans.ok()) return ans.status();
  uint32_t version = ans->key_version;
  for (size_t i = 1; i < parts.size(); ++i) {
    auto more = ChangeMembers(session, name, true, std::move(parts[i]));
    if (!more.ok()) return more.status();
    version = more->key_version;
  }
  std::printf("created group %s (id %s, %zu members, key version %u)\n",
              name.c_str(), FormatNodeId(ans->group_id).c_str(), all.size(),
              version);
  return OkStatus();
}

Status Change(AcSession& session, const AcArgs& a, bool add) {
  const char* what = add ? "add" : "remove";
  KGR_ASSIGN_OR_RETURN(std::string name, NameOf(a, what));
  if (!a.members || a.members->empty()) {
    return InvalidArgumentError(std::string("group ") + what +
                                " needs --members ID,ID...");
  }
  if (a.members->size() > kMaxGroupMembers) {
    return InvalidArgumentError("--members: at most " +
                                std::to_string(kMaxGroupMembers));
  }
  uint32_t version = 0;
  for (auto& part : Split(*a.members)) {
    auto ans = ChangeMembers(session, name, add, std::move(part));
    if (!ans.ok()) return ans.status();
    version = ans->key_version;
  }
  std::printf("%s %zu member(s) %s group %s (key version %u)\n",
              add ? "added" : "removed", a.members->size(), add ? "to" : "from",
              name.c_str(), version);
  return OkStatus();
}

Status Delete(AcSession& session, const AcArgs& a) {
  KGR_ASSIGN_OR_RETURN(std::string name, NameOf(a, "delete"));
  auto ans = session.Call<StatusOr<AcGroupDeleteAns>>(
      [&](AcClient& c, auto done) { c.GroupDelete(name, done); });
  if (!ans.ok()) return ans.status();
  std::printf("deleted group %s\n", name.c_str());
  return OkStatus();
}

Status List(AcSession& session, bool as_json) {
  auto list = session.Call<StatusOr<AcGroupListAns>>(
      [](AcClient& c, auto done) { c.GroupList(done); });
  if (!list.ok()) return list.status();
  nlohmann::json j = nlohmann::json::array();
  for (const auto& g : list->groups) {
    nlohmann::json members = nlohmann::json::array();
    for (uint32_t m : g.members) members.push_back(FormatNodeId(m));
    j.push_back({{"name", g.name},
                 {"id", FormatNodeId(g.group_id)},
                 {"mode", ModeName(g.mode)},
                 {"rekey_every_s", g.lifetime_s},
                 {"key_version", g.key_version},
                 {"members", members}});
  }
  if (as_json) {
    std::cout << j.dump(2) << "\n";
    return OkStatus();
  }
  for (const auto& g : j) {
    std::cout << g["name"].get<std::string>() << "  "
              << g["id"].get<std::string>() << "  "
              << g["mode"].get<std::string>() << "  version "
              << g["key_version"].get<uint32_t>() << "  members:";
    for (const auto& m : g["members"]) std::cout << " " << m.get<std::string>();
    std::cout << "\n";
  }
  return OkStatus();
}

}  // namespace

Status AcGroup(const AcOptions& o, const AcArgs& a, std::string_view what) {
  // Flags are checked before the session opens (no broker needed to refuse).
  if (what == "create") {
    KGR_RETURN_IF_ERROR(NameOf(a, what).status());
    KGR_RETURN_IF_ERROR(ModeOf(a).status());
  } else if (what == "add" || what == "remove" || what == "delete") {
    KGR_RETURN_IF_ERROR(NameOf(a, what).status());
  }
  KGR_ASSIGN_OR_RETURN(auto session, AcSession::Open(o));
  if (what == "create") return Create(*session, a);
  if (what == "add") return Change(*session, a, true);
  if (what == "remove") return Change(*session, a, false);
  if (what == "delete") return Delete(*session, a);
  return List(*session, a.json);
}

}  // namespace kgr
