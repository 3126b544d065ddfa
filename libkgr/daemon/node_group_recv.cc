// kgr-node group-recv: prints the group messages the running daemon
// delivers, through the application API (docs/api.md "Groups") like any
// application: group_subscribe, then one line per group_message event.
#include <cctype>
#include <chrono>
#include <cstdio>
#include <string>

#include "kgr/app_client.h"
#include "kgr/node_daemon.h"
#include "kgr/topic.h"

namespace kgr {
namespace {

// Printable text as it is, anything else as hex.
std::string Printable(const Bytes& data) {
  for (uint8_t b : data) {
    if (!std::isprint(b)) return "hex:" + ToHex(data);
  }
  return std::string(data.begin(), data.end());
}

}  // namespace

Status NodeGroupRecv(const NodeOptions& o, const NodeCommand& c) {
  const std::string socket =
      o.api.socket.empty() ? o.daemon.state_dir + "/app.sock" : o.api.socket;
  auto app = AppClient::Connect(socket, "kgr-node group-recv");
  if (!app.ok()) {
    return app.status().Annotate("no running daemon to receive through");
  }
  std::vector<uint32_t> groups;
  if (c.group) groups.push_back(*c.group);
  KGR_RETURN_IF_ERROR((*app)->GroupSubscribe(groups));
  std::printf("group-recv: subscribed\n");
  std::fflush(stdout);
  using Clock = std::chrono::steady_clock;
  const auto deadline = Clock::now() + std::chrono::seconds(c.wait_s);
  uint64_t received = 0;
  while (c.count == 0 || received < c.count) {
    int timeout_ms = -1;
    if (c.wait_s != 0) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                      deadline - Clock::now())
                      .count();
      if (left <= 0) break;
      timeout_ms = static_cast<int>(left);
    }
    auto ev = (*app)->NextEvent(timeout_ms);
    if (!ev.ok()) {
      if (ev.status().code() == StatusCode::kDeadlineExceeded) break;
      return ev.status();
    }
    if (ev->type == "group_message") {
      std::printf("group %s from %s key v%u%s: %s\n",
                  FormatNodeId(ev->group).c_str(),
                  FormatNodeId(ev->peer).c_str(), ev->key_version,
                  ev->sender_verified ? " (signature verified)" : "",
                  Printable(ev->data).c_str());
      ++received;
    } else if (ev->type == "group_key_ready") {
      std::printf("group %s key v%u\n", FormatNodeId(ev->group).c_str(),
                  ev->key_version);
    } else if (ev->type == "dropped") {
      std::printf("dropped %llu\n", static_cast<unsigned long long>(ev->count));
    }
    std::fflush(stdout);
  }
  if (c.count != 0 && received < c.count) {
    return DeadlineExceededError("received " + std::to_string(received) +
                                 " of " + std::to_string(c.count) +
                                 " group messages in time");
  }
  return OkStatus();
}

}  // namespace kgr
