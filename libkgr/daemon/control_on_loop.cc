// A daemon's control socket, its requests run on the daemon's loop.
#include <utility>

#include "daemon/wiring.h"

namespace kgr {

std::string ControlSocketPath(const std::string& state_dir) {
  return state_dir + "/control.sock";
}

StatusOr<std::unique_ptr<ControlServer>> ServeControl(
    const std::string& state_dir, EventLoop& loop, ControlExecute execute,
    nlohmann::json busy) {
  return ControlServer::Start(
      ControlSocketPath(state_dir),
      [&loop, execute = std::move(execute), busy = std::move(busy)](
          nlohmann::json req, ControlServer::Respond respond) {
        if (!loop.Post([execute, req, respond] { execute(req, respond); })) {
          respond(busy);
        }
      });
}

}  // namespace kgr
