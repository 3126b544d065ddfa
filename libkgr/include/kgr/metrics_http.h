// The HTTP side of `--metrics-listen`: a minimal HTTP/1.1 server that
// answers GET (and HEAD) /metrics with a Prometheus text exposition
// (metrics.h) and 404/405/400 otherwise. One request per connection
// (Connection: close).
//
// Robust against slow or malicious clients: a request head is at most
// kMaxRequestBytes (else 431), a connection lives at most kConnectionMs
// from accept to the end of its answer (else it is closed), and at most
// kMaxConnections are open at once (more are closed at accept).
//
// Thread safety: MetricsServer runs its own thread (poll); it calls
// `render` on that thread, one scrape at a time. The daemon's render posts
// to its event loop and waits (daemon/metrics_endpoint.h).
#ifndef KGR_METRICS_HTTP_H_
#define KGR_METRICS_HTTP_H_

#include <atomic>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

#include "kgr/cli.h"
#include "kgr/status.h"

namespace kgr {

inline constexpr size_t kMaxRequestBytes = 8192;
inline constexpr int kConnectionMs = 5000;
inline constexpr size_t kMaxConnections = 16;

// `--metrics-listen HOST:PORT` [metrics_listen]: off unless set.
inline constexpr SettingSpec kMetricsListenSetting = {
    .flag = "metrics-listen",
    .key = "metrics_listen",
    .kind = SettingKind::kHostPort};

struct HttpRequestHead {
  enum class Result { kIncomplete, kComplete, kBad, kTooLarge };
  Result result = Result::kIncomplete;
  std::string method;
  std::string path;   // the target without its query
  std::string error;  // kBad: what is wrong
};

// Parses the request line and headers of `data` (what was read so far):
// kIncomplete until the blank line, kTooLarge past kMaxRequestBytes.
HttpRequestHead ParseHttpRequestHead(std::string_view data);

// The whole answer (status line, headers, body) to `head`; `render` is
// called only for GET or HEAD /metrics and returns the body, or nullopt
// when it could not be made (503).
std::string HttpAnswer(
    const HttpRequestHead& head,
    const std::function<std::optional<std::string>()>& render);

class MetricsServer {
 public:
  using Render = std::function<std::optional<std::string>()>;
  ~MetricsServer();
  // Listens on `address` (IPv4 host:port, "localhost" is 127.0.0.1; port 0
  // picks a free one) and starts. A host other than loopback is logged as
  // a warning: the metrics say how busy the KED is.
  static StatusOr<std::unique_ptr<MetricsServer>> Start(
      const std::string& address, Render render);
  int port() const { return port_; }
  void Stop();

 private:
  MetricsServer() = default;
  void Serve();

  int fd_ = -1;
  int port_ = 0;
  Render render_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace kgr

#endif  // KGR_METRICS_HTTP_H_
