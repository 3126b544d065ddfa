#include "daemon/metrics_endpoint.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <future>

namespace kgr {
namespace {

using Type = MetricsText::Type;

const char* StateLabel(NodeState s) {
  switch (s) {
    case NodeState::kAuthorized:
      return "authorized";
    case NodeState::kRegistered:
      return "registered";
    default:
      return "revoked";
  }
}

void CountNodeStates(const NodeDescTable& nodes, uint64_t changes,
                     NodeStateCount& c) {
  if (c.counted && c.changes == changes) return;
  c = NodeStateCount{.counted = true, .changes = changes};
  nodes.ForEach([&](const NodeDesc& d) {
    if (d.state == NodeState::kAuthorized) ++c.authorized;
    if (d.state == NodeState::kRegistered) ++c.registered;
    if (d.state == NodeState::kRevoked) ++c.revoked;
  });
}

}  // namespace

StatusOr<std::unique_ptr<MetricsServer>> ServeMetrics(
    const std::string& address, EventLoop& loop,
    std::function<std::string()> render) {
  if (address.empty()) return std::unique_ptr<MetricsServer>();
  auto on_loop = [&loop,
                  render = std::move(render)]() -> std::optional<std::string> {
    auto done = std::make_shared<std::promise<std::string>>();
    std::future<std::string> text = done->get_future();
    if (!loop.Post([done, render] { done->set_value(render()); })) {
      return std::nullopt;
    }
    if (text.wait_for(std::chrono::milliseconds(kMetricsRenderTimeoutMs)) !=
        std::future_status::ready) {
      return std::nullopt;
    }
    return text.get();
  };
  KGR_ASSIGN_OR_RETURN(auto server, MetricsServer::Start(address, on_loop));
  spdlog::info("metrics: http://{}:{}/metrics",
               address.substr(0, address.rfind(':')), server->port());
  return server;
}

void AppendKsMetrics(const KeyServer& ks, const NodeDescTable& nodes,
                     const GenKeysTable& gen_keys, const KeyServerOptions& o,
                     const KsDaemonCounters& daemon, NodeStateCount& states,
                     MetricsText& out) {
  const KeyServerStats& s = ks.stats();
  out.Counter("kgr_ks_registrations_total",
              "Nodes registered (nksk_key_ans sent for a new registration).",
              s.registrations);
  out.Counter("kgr_ks_keys_issued_total",
              "Session keys issued: gen_keys record synced, key and "
              "notification sent (step 2-3).",
              s.keys_issued);
  out.Counter("kgr_ks_keys_confirmed_total",
              "Session keys whose delivery the requester confirmed (step 7).",
              s.keys_confirmed);
  out.Counter("kgr_ks_keys_purged_total",
              "Session keys purged unconfirmed after gen_key_ttl_ms.",
              s.keys_purged);
  out.Counter("kgr_ks_authorizations_total", "Nodes the AC authorized.",
              s.authorizations);
  out.Counter("kgr_ks_rate_limited_total",
              "Frames dropped because the sender's (or the AC channel's) "
              "rate limit was reached.",
              s.rate_limited);
  out.Family("kgr_ks_frames_dropped_total", Type::kCounter,
             "Frames the KS dropped, by reason.");
  for (size_t i = 0; i < static_cast<size_t>(DropReason::kCount); ++i) {
    out.Sample("kgr_ks_frames_dropped_total", s.drops[i],
               {{"reason", DropReasonName(static_cast<DropReason>(i))}});
  }
  out.Family("kgr_ks_requests_refused_total", Type::kCounter,
             "Key requests the KS refused with KS_ERROR, by code.");
  static constexpr const char* kCodes[kKsErrorCodes] = {
      "",         "pair_not_allowed", "peer_unknown",       "busy",
      "internal", "stale_request",    "certificate_refused"};
  for (size_t i = 1; i < kKsErrorCodes; ++i) {
    out.Sample("kgr_ks_requests_refused_total", s.refusals[i],
               {{"code", kCodes[i]}});
  }
  out.Counter("kgr_ks_inbox_dropped_total",
              "MQTT messages dropped before any check because the KS's "
              "queue was full.",
              daemon.inbox_dropped + daemon.loop_dropped);
  out.HistogramFamily("kgr_ks_establishment_seconds",
                      "Session key establishment at the KS, from the key "
                      "request to its confirmation (millisecond resolution).",
                      s.establishment_seconds.Take());
  out.HistogramFamily("kgr_ks_commit_seconds",
                      "Group commits of new gen_keys records (write and "
                      "fdatasync) before their keys are sent.",
                      s.commit_seconds.Take());
  out.Gauge("kgr_ks_pending_keys",
            "gen_keys records: unconfirmed session keys and served request "
            "ids not yet covered by a persisted floor (bounded by "
            "max_pending).",
            gen_keys.size());
  out.Gauge("kgr_ks_max_pending", "The max_pending setting.", o.max_pending);
  CountNodeStates(nodes, s.node_desc_changes, states);
  out.Family("kgr_ks_nodes", Type::kGauge, "node_desc entries by state.");
  for (NodeState st :
       {NodeState::kAuthorized, NodeState::kRegistered, NodeState::kRevoked}) {
    uint64_t n = st == NodeState::kAuthorized   ? states.authorized
                 : st == NodeState::kRegistered ? states.registered
                                                : states.revoked;
    out.Sample("kgr_ks_nodes", n, {{"state", StateLabel(st)}});
  }
}

void AppendNodeMetrics(const NodeClient& c, MetricsText& out) {
  const NodeClientStats& s = c.stats();
  uint64_t held = 0, peers = 0;
  for (const PairInfo& p : c.Pairs()) {
    ++peers;
    if (p.has_key) ++held;
  }
  out.Gauge("kgr_node_registered", "1 once the node is registered with the KS.",
            c.registered() ? 1 : 0);
  out.Gauge("kgr_node_peers", "Peers in this node's peer list.", peers);
  out.Gauge("kgr_node_keys_held",
            "Peers with which this node holds a confirmed session key.", held);
  out.Gauge("kgr_node_pending_requests",
            "Requests under way (key requests, data requests, rotations).",
            c.pending_requests());
  out.Counter("kgr_node_keys_established_total",
              "Session keys this node requested and completed (step 6).",
              s.keys_established);
  out.Counter("kgr_node_renewals_total",
              "Of those, renewals of a pair that had a key.", s.renewals);
  out.Counter("kgr_node_keys_received_total",
              "Session keys a peer requested that this node stored (step 4).",
              s.keys_received);
  out.Counter("kgr_node_key_request_failures_total",
              "Key requests that ended with an error (timeout, refusal, ...).",
              s.key_request_failures);
  out.Counter("kgr_node_data_frames_sent_total",
              "Data requests and replies sent (retransmissions not counted).",
              s.data_sent);
  out.Counter("kgr_node_data_frames_received_total",
              "Data requests and replies accepted from peers.",
              s.data_received);
  out.Counter("kgr_node_frames_dropped_total",
              "Frames this node dropped (from the KS or from peers).",
              s.frames_dropped);
  out.HistogramFamily("kgr_node_key_request_seconds",
                      "Key requests from the request to the key in use "
                      "(step 6; millisecond resolution).",
                      s.key_request_seconds.Take());
}

void AppendProcessMetrics(const TpmCounters& tpm, MetricsText& out) {
  out.HistogramFamily("kgr_store_fsync_seconds",
                      "fdatasync of a store journal (every record file).",
                      StoreFsyncSeconds().Take());
  out.Counter("kgr_tpm_nv_writes_total",
              "TPM NV writes and NV definitions since the start.",
              tpm.nv_writes);
  out.Counter("kgr_tpm_commands_total",
              "Commands sent to the TPM since the start.", tpm.tpm_commands);
}

}  // namespace kgr
