// Group messages through the application API (docs/api.md "Groups"):
// group_send, group_subscribe, and the events group_message and
// group_key_ready. A group is used like a peer in api.users (its id as 8
// hex digits, or "*").
#include <spdlog/spdlog.h>

#include "daemon/app_router.h"
#include "kgr/app_wire.h"
#include "kgr/topic.h"

namespace kgr {
namespace {

Status NotAllowed(uint32_t uid, uint32_t group) {
  return PermissionDeniedError("uid " + std::to_string(uid) +
                               " may not use group " + FormatNodeId(group) +
                               " (api.users)");
}

}  // namespace

void AppRouter::GroupSendOp(uint64_t conn, App& app, const nlohmann::json& m) {
  nlohmann::json id = m.value("id", nlohmann::json());
  auto group = AppPeerField(m, "group");
  if (!group.ok()) return Fail(conn, id, group.status());
  auto data = AppDataField(m, "data");
  if (!data.ok()) return Fail(conn, id, data.status());
  if (!access_.Allows(app.uid, *group)) {
    return Fail(conn, id, NotAllowed(app.uid, *group));
  }
  Status st = client_.SendGroup(*group, SecretBytes(*data));
  if (!st.ok()) return Fail(conn, id, st);
  server_.Send(conn, {{"id", id}, {"ok", true}}, false);
}

void AppRouter::GroupSubscribeOp(uint64_t conn, App& app,
                                 const nlohmann::json& m) {
  nlohmann::json id = m.value("id", nlohmann::json());
  std::optional<std::set<uint32_t>> groups;
  if (m.contains("groups")) {
    if (!m["groups"].is_array()) {
      return Fail(conn, id, InvalidArgumentError("field 'groups' not a list"));
    }
    groups.emplace();
    for (const auto& g : m["groups"]) {
      auto group = AppPeerField({{"groups", g}}, "groups");
      if (!group.ok()) return Fail(conn, id, group.status());
      if (!access_.Allows(app.uid, *group)) {
        return Fail(conn, id, NotAllowed(app.uid, *group));
      }
      groups->insert(*group);
    }
  }
  app.group_subscribed = true;
  app.groups = std::move(groups);
  nlohmann::json held = nlohmann::json::array();
  for (const GroupInfo& g : client_.Groups()) {
    if (access_.Allows(app.uid, g.group_id)) {
      held.push_back({{"group", FormatNodeId(g.group_id)},
                      {"key_version", g.key_version},
                      {"mode", std::string(GroupModeName(g.mode))}});
    }
  }
  server_.Send(conn, {{"id", id}, {"ok", true}, {"groups", held}}, false);
}

void AppRouter::DeliverGroup(uint32_t group, const nlohmann::json& event) {
  for (auto& [conn, app] : apps_) {
    if (!app.group_subscribed || !access_.Allows(app.uid, group)) continue;
    if (app.groups.has_value() && !app.groups->contains(group)) continue;
    server_.Send(conn, event, true);
  }
}

void AppRouter::OnGroupMessage(const GroupMessage& m) {
  DeliverGroup(m.group_id,
               {{"event", "group_message"},
                {"group", FormatNodeId(m.group_id)},
                {"sender", FormatNodeId(m.sender)},
                {"key_version", m.key_version},
                {"counter", m.counter},
                {"sender_verified", m.mode == GroupMode::kSenderAuth},
                {"data", Base64Encode(Bytes(m.data.span().begin(),
                                            m.data.span().end()))}});
}

void AppRouter::OnGroupKey(uint32_t group_id, uint32_t key_version) {
  DeliverGroup(group_id, {{"event", "group_key_ready"},
                          {"group", FormatNodeId(group_id)},
                          {"key_version", key_version}});
}

}  // namespace kgr
