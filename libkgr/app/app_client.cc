// The C++ client of the application API (kgr/app_client.h).
#include "kgr/app_client.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace kgr {
namespace {

std::string Hex8(uint32_t v) {
  char buf[9];
  std::snprintf(buf, sizeof(buf), "%08x", v);
  return buf;
}

Status FromAnswer(const nlohmann::json& m) {
  std::string code = m.value("code", "INTERNAL");
  std::string error = m.value("error", "failed");
  for (int c = 0; c <= static_cast<int>(StatusCode::kInternal); ++c) {
    if (StatusCodeName(static_cast<StatusCode>(c)) == code) {
      return Status(static_cast<StatusCode>(c), error);
    }
  }
  return InternalError(code + ": " + error);
}

StatusOr<AppEvent> ToEvent(const nlohmann::json& m) {
  AppEvent e;
  e.type = m.value("event", "");
  if (m.contains("peer")) {
    KGR_ASSIGN_OR_RETURN(e.peer, AppPeerField(m, "peer"));
  }
  if (m.contains("group")) {
    KGR_ASSIGN_OR_RETURN(e.group, AppPeerField(m, "group"));
  }
  if (m.contains("sender")) {
    KGR_ASSIGN_OR_RETURN(e.peer, AppPeerField(m, "sender"));
  }
  e.sender_verified = m.value("sender_verified", false);
  e.key_version = m.value("key_version", 0u);
  e.counter = m.value("counter", uint64_t{0});
  e.request = m.value("request", false);
  e.token = m.value("token", uint64_t{0});
  e.count = m.value("count", uint64_t{0});
  if (e.type == "message" || e.type == "group_message") {
    auto data = Base64Decode(m.value("data", ""));
    if (!data.ok()) return data.status();
    e.data = std::move(*data);
  }
  return e;
}

}  // namespace

StatusOr<std::unique_ptr<AppClient>> AppClient::Connect(
    const std::string& path, const std::string& name) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path)) {
    return InvalidArgumentError("socket path too long: " + path);
  }
  std::memcpy(addr.sun_path, path.data(), path.size());
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return InternalError(std::strerror(errno));
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    std::string why = std::strerror(errno);
    close(fd);
    return UnavailableError("no node daemon at " + path + ": " + why);
  }
  std::unique_ptr<AppClient> c(new AppClient(fd));
  KGR_ASSIGN_OR_RETURN(
      nlohmann::json hello,
      c->Call({{"op", "hello"}, {"version", kAppApiVersion}, {"name", name}}));
  KGR_ASSIGN_OR_RETURN(c->n_id_, AppPeerField(hello, "n_id"));
  return c;
}

AppClient::~AppClient() {
  if (fd_ >= 0) close(fd_);
}

StatusOr<nlohmann::json> AppClient::Read(int timeout_ms) {
  for (;;) {
    KGR_ASSIGN_OR_RETURN(auto frame, reader_.Next());
    if (frame.has_value()) return std::move(*frame);
    pollfd p{fd_, POLLIN, 0};
    int r = poll(&p, 1, timeout_ms);
    if (r == 0) return DeadlineExceededError("nothing from the daemon");
    if (r < 0 && errno != EINTR) return InternalError(std::strerror(errno));
    if (r < 0) continue;
    char buf[65536];
    ssize_t n = read(fd_, buf, sizeof(buf));
    if (n == 0) return UnavailableError("the daemon closed the connection");
    if (n < 0 && errno != EINTR && errno != EAGAIN) {
      return UnavailableError(std::strerror(errno));
    }
    if (n > 0) reader_.Append(buf, static_cast<size_t>(n));
  }
}

StatusOr<nlohmann::json> AppClient::Call(nlohmann::json request) {
  uint64_t id = next_id_++;
  request["id"] = id;
  std::string frame = EncodeAppFrame(request);
  for (size_t done = 0; done < frame.size();) {
    ssize_t n =
        send(fd_, frame.data() + done, frame.size() - done, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return UnavailableError(std::strerror(errno));
    done += static_cast<size_t>(n);
  }
  for (;;) {
    KGR_ASSIGN_OR_RETURN(nlohmann::json m, Read(-1));
    if (m.contains("event")) {
      events_.push_back(std::move(m));
      continue;
    }
    if (!m.value("ok", false)) return FromAnswer(m);
    return m;
  }
}

Status AppClient::Send(uint32_t peer, const Bytes& data, uint64_t timeout_ms) {
  return Call({{"op", "send"},
               {"peer", Hex8(peer)},
               {"data", Base64Encode(data)},
               {"request", false},
               {"timeout_ms", timeout_ms}})
      .status();
}

StatusOr<Bytes> AppClient::Request(uint32_t peer, const Bytes& data,
                                   uint64_t timeout_ms) {
  KGR_ASSIGN_OR_RETURN(nlohmann::json m, Call({{"op", "send"},
                                               {"peer", Hex8(peer)},
                                               {"data", Base64Encode(data)},
                                               {"request", true},
                                               {"timeout_ms", timeout_ms}}));
  return Base64Decode(m.value("reply", ""));
}

Status AppClient::Subscribe(const std::vector<uint32_t>& peers) {
  nlohmann::json req = {{"op", "subscribe"}};
  if (!peers.empty()) {
    req["peers"] = nlohmann::json::array();
    for (uint32_t p : peers) req["peers"].push_back(Hex8(p));
  }
  return Call(req).status();
}

Status AppClient::GroupSend(uint32_t group, const Bytes& data) {
  return Call({{"op", "group_send"},
               {"group", Hex8(group)},
               {"data", Base64Encode(data)}})
      .status();
}

Status AppClient::GroupSubscribe(const std::vector<uint32_t>& groups) {
  nlohmann::json req = {{"op", "group_subscribe"}};
  if (!groups.empty()) {
    req["groups"] = nlohmann::json::array();
    for (uint32_t g : groups) req["groups"].push_back(Hex8(g));
  }
  return Call(req).status();
}

Status AppClient::Answer(uint64_t token, const Bytes& data) {
  return Call(
             {{"op", "answer"}, {"token", token}, {"data", Base64Encode(data)}})
      .status();
}

StatusOr<nlohmann::json> AppClient::GetStatus() {
  return Call({{"op", "status"}});
}

StatusOr<AppEvent> AppClient::NextEvent(int timeout_ms) {
  if (!events_.empty()) {
    nlohmann::json m = std::move(events_.front());
    events_.pop_front();
    return ToEvent(m);
  }
  for (;;) {
    KGR_ASSIGN_OR_RETURN(nlohmann::json m, Read(timeout_ms));
    if (m.contains("event")) return ToEvent(m);
  }
}

}  // namespace kgr
