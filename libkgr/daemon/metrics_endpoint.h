// `--metrics-listen`: the daemons' Prometheus endpoint (docs/metrics.md).
// The HTTP server (kgr/metrics_http.h) runs its own thread; each scrape is
// rendered on the daemon's event loop, where the counters are written, so
// the hot path keeps plain increments. Internal to libkgr/daemon/.
#ifndef KGR_DAEMON_METRICS_ENDPOINT_H_
#define KGR_DAEMON_METRICS_ENDPOINT_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "kgr/event_loop.h"
#include "kgr/key_server.h"
#include "kgr/ks_state.h"
#include "kgr/metrics.h"
#include "kgr/metrics_http.h"
#include "kgr/node_client.h"
#include "kgr/store.h"
#include "kgr/tpm.h"

namespace kgr {

// A scrape waits this long for the loop, then gets 503.
inline constexpr int kMetricsRenderTimeoutMs = 2000;

// Serves `address` (empty: no endpoint, nullptr); `render` runs on `loop`.
StatusOr<std::unique_ptr<MetricsServer>> ServeMetrics(
    const std::string& address, EventLoop& loop,
    std::function<std::string()> render);

// What only the KS daemon knows besides the KeyServer.
struct KsDaemonCounters {
  uint64_t inbox_dropped = 0;  // messages dropped with their lane full
  uint64_t loop_dropped = 0;   // tasks the event loop refused
};

// The KS's metrics. node_desc states are counted by decrypting every
// record: `node_states` keeps the count between scrapes, and it is made
// again only after node_desc changed (KeyServerStats::node_desc_changes).
struct NodeStateCount {
  bool counted = false;
  uint64_t changes = 0;
  uint64_t authorized = 0, registered = 0, revoked = 0;
};
void AppendKsMetrics(const KeyServer& ks, const NodeDescTable& nodes,
                     const GenKeysTable& gen_keys, const KeyServerOptions& o,
                     const KsDaemonCounters& daemon, NodeStateCount& states,
                     MetricsText& out);

// The node's metrics.
void AppendNodeMetrics(const NodeClient& client, MetricsText& out);

// Both: the store's fsync histogram and the TPM's counters.
void AppendProcessMetrics(const TpmCounters& tpm, MetricsText& out);

}  // namespace kgr

#endif  // KGR_DAEMON_METRICS_ENDPOINT_H_
