// A connected AC session with the KS: MQTT transport and AcClient on an
// event loop, for one kgr-ac command. Internal to libkgr/daemon/.
#ifndef KGR_DAEMON_AC_SESSION_H_
#define KGR_DAEMON_AC_SESSION_H_

#include <memory>
#include <optional>
#include <utility>

#include "kgr/ac_client.h"
#include "kgr/ac_tool.h"
#include "kgr/cms.h"
#include "kgr/event_loop.h"
#include "kgr/transport.h"

namespace kgr {

class AcSession {
 public:
  static StatusOr<std::unique_ptr<AcSession>> Open(const AcOptions& o);
  ~AcSession();

  AcClient& client() { return *client_; }
  const CmsEndpoint& cms() const { return *cms_; }

  // Asks one request and waits for its answer: `ask(client, done)` must
  // call done(answer) once (an answer after the timeout is dropped).
  template <typename T, typename Ask>
  T Call(Ask ask) {
    struct Answer {
      bool done = false;
      std::optional<T> value;
    };
    auto answer = std::make_shared<Answer>();
    ask(*client_, [answer](T r) {
      answer->value.emplace(std::move(r));
      answer->done = true;
    });
    Status st = Wait(answer->done);
    if (!st.ok()) return T(st);
    return std::move(*answer->value);
  }

 private:
  AcSession() = default;
  // Runs the loop until `done` or the timeout.
  Status Wait(const bool& done);

  EventLoop loop_;
  std::unique_ptr<CmsEndpoint> cms_;
  std::unique_ptr<Transport> transport_;
  std::unique_ptr<AcClient> client_;
  int timeout_ms_ = 10000;
};

}  // namespace kgr

#endif  // KGR_DAEMON_AC_SESSION_H_
