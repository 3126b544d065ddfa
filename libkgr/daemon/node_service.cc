#include "daemon/node_service.h"

#include <pthread.h>
#include <spdlog/spdlog.h>

#include <csignal>
#include <cstdio>
#include <utility>

#include "daemon/app_router.h"
#include "daemon/journal_log.h"
#include "daemon/metrics_endpoint.h"
#include "daemon/node_cert_renewal.h"
#include "daemon/node_control.h"
#include "daemon/reload.h"
#include "daemon/wiring.h"
#include "kgr/cli.h"
#include "kgr/topic.h"

namespace kgr {

std::string NodeTlsPath(const NodeOptions& o, const char* name) {
  return o.daemon.state_dir + "/tls/" + name;
}

NodeService::NodeService(const NodeOptions& o)
    : counter_(*DefaultFileSystem(), o.daemon.state_dir, "node") {}

StatusOr<std::unique_ptr<NodeService>> NodeService::Open(const NodeOptions& o) {
  std::unique_ptr<NodeService> x(new NodeService(o));
  KGR_ASSIGN_OR_RETURN(OwnData own,
                       OpenOwnData(o.daemon, Role::kNode, x->lock_, x->tpm_));
  KGR_RETURN_IF_ERROR(MixTpmEntropy(*x->tpm_));
  SetJournalNodeField(FormatNodeId(own.identity.n_id));
  KGR_ASSIGN_OR_RETURN(
      x->ses_,
      SesKeysStore::Open(*DefaultFileSystem(), o.daemon.state_dir + "/ses_keys",
                         own.nk, own.identity.n_id, StoreOptionsFor(o.daemon)));
  // The node's group state (docs/storage.md section 1.5), sealed with NK.
  KGR_ASSIGN_OR_RETURN(
      x->groups_,
      GroupStore::Open(*DefaultFileSystem(), o.daemon.state_dir + "/grp_keys",
                       own.nk, own.identity.n_id, StoreOptionsFor(o.daemon)));
  BrokerOptions b = o.daemon.broker;
  if (b.address.empty()) b.address = own.identity.broker_address;
  // A renewal a crash interrupted is finished before the files are read.
  KGR_RETURN_IF_ERROR(RecoverNodeTlsFiles(o.daemon.state_dir + "/tls"));
  b.ca_file = NodeTlsPath(o, "ca.pem");
  b.cert_file = NodeTlsPath(o, "cert.pem");
  b.key_file = NodeTlsPath(o, "key.pem");
  KGR_ASSIGN_OR_RETURN(x->transport_,
                       OpenTransport(b, NodeIdentity(own.identity.n_id)));
  NodeClientOptions no = o.client;
  KGR_ASSIGN_OR_RETURN(no.counter_floor, x->counter_.LoadFloor());
  x->client_ = std::make_unique<NodeClient>(
      std::move(own), *x->tpm_, *x->transport_, *x->ses_, *SystemClock(), no);
  x->client_->SetGroupStore(x->groups_.get());
  NodeService* self = x.get();
  x->transport_->SetHandler([self](const std::string& t, Bytes p) {
    if (!self->loop_.Post([self, t, p = std::move(p)] {
          self->client_->HandleMessage(t, p);
        })) {
      spdlog::warn("node: queue full, message dropped");
    }
  });
  KGR_RETURN_IF_ERROR(x->transport_->Connect());
  KGR_RETURN_IF_ERROR(x->client_->Start());
  return x;
}

NodeService::~NodeService() {
  // The exact receive counters and usage (a clean restart costs nothing).
  if (client_) {
    Status st = client_->Shutdown();
    if (!st.ok()) spdlog::error("node: counters not saved: {}", st.ToString());
  }
  SaveCounterIfChanged();
  if (transport_) (void)transport_->Disconnect();
}

void NodeService::SaveCounterIfChanged() {
  if (client_) counter_.SaveIfChanged(client_->last_counter());
}

void NodeService::NotifyReady() {
  notifier_.Ready("serving, n_id " + FormatNodeId(client_->n_id()));
}

void NodeService::Reload(const NodeOptions& running) {
  notifier_.Reloading();
  StatusOr<NodeOptions> n = ReloadOptions<NodeOptions>();
  if (!n.ok()) {
    LogReloadRefused("node", n.status());
  } else {
    SetLogLevel(n->daemon.log_level);
    client_->SetPolicy(n->client);
    const KeyPolicy& p = n->client.policy;
    spdlog::info(
        "node: reloaded: log_level={} timeout_ms={} policy.max_age_s={} "
        "policy.max_frames={} policy.max_bytes={} policy.pairs={}",
        n->daemon.log_level, n->client.request_timeout_ms, p.max_age_ms / 1000,
        p.max_frames, p.max_bytes, n->client.pair_policy.size());
    std::vector<std::string> restart_only =
        RestartOnlyChanges(running.daemon, n->daemon);
    // The application API's socket and access rules are read at start.
    const NodeOptions::Api &was = running.api, &now = n->api;
    if (was.socket != now.socket) restart_only.push_back("api.socket");
    if (was.group != now.group) restart_only.push_back("api.group");
    if (was.users != now.users) restart_only.push_back("api.users");
    if (was.queue_messages != now.queue_messages) {
      restart_only.push_back("api.queue");
    }
    if (running.cert_renew_at_percent != n->cert_renew_at_percent) {
      restart_only.push_back("cert_renew_at_percent");
    }
    LogRestartOnly("node", restart_only);
  }
  NotifyReady();
}

void NodeService::Execute(const nlohmann::json& req,
                          ControlServer::Respond respond) {
  ExecuteNodeCommand(*client_, *tpm_, *SystemClock(), req, std::move(respond));
}

namespace {

// SIGTERM, SIGINT and SIGHUP blocked in this thread and every thread started
// from now on (the transport's), so that they reach StopLoopOnSignals' sigwait
// and the daemon stops cleanly instead of dying with the default action.
void BlockStopSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

}  // namespace

Status NodeRun(const NodeOptions& o) {
  BlockStopSignals();
  KGR_ASSIGN_OR_RETURN(auto svc, NodeService::Open(o));
  AppApiOptions api_options;
  api_options.server.path =
      o.api.socket.empty() ? o.daemon.state_dir + "/app.sock" : o.api.socket;
  api_options.server.group = o.api.group;
  api_options.server.queue_messages = o.api.queue_messages;
  api_options.users = o.api.users;
  KGR_ASSIGN_OR_RETURN(auto api,
                       AppApi::Start(api_options, svc->client(), svc->loop()));
  NodeService* self = svc.get();
  StopLoopOnSignals(svc->loop(), [self, &o] { self->Reload(o); });
  KGR_ASSIGN_OR_RETURN(
      auto control,
      ServeControl(
          o.daemon.state_dir, svc->loop(),
          [self](const nlohmann::json& req, ControlServer::Respond respond) {
            self->Execute(req, std::move(respond));
          },
          {{"ok", false}, {"code", "UNAVAILABLE"}, {"error", "busy"}}));
  KGR_ASSIGN_OR_RETURN(
      auto metrics, ServeMetrics(o.daemon.metrics_listen, svc->loop(), [self] {
        MetricsText m;
        AppendNodeMetrics(self->client(), m);
        AppendProcessMetrics(self->tpm_counters(), m);
        return m.text();
      }));
  // Until registered, for as long as the daemon runs (a KS that is away
  // when the node starts only delays it).
  svc->client().KeepRegistering();
  std::printf("kgr-node ready: n_id=%s\n",
              FormatNodeId(svc->client().n_id()).c_str());
  std::fflush(stdout);
  NodeCertRenewal renewal(o.daemon.state_dir + "/tls", o.cert_renew_at_percent,
                          svc->client(), svc->transport());
  svc->NotifyReady();
  uint64_t last_save = 0;
  svc->loop().Run([&] {
    svc->client().Tick();
    uint64_t now = SystemClock()->NowMonotonicMillis();
    svc->notifier().Tick(now);
    api->Tick(now);
    if (now - last_save >= 1000) {
      svc->SaveCounterIfChanged();
      renewal.Tick(
          static_cast<int64_t>(SystemClock()->NowUnixMicros() / 1000000), now);
      last_save = now;
    }
  });
  svc->notifier().Stopping();
  if (metrics) metrics->Stop();
  control->Stop();
  api.reset();
  spdlog::info("node: stopped");
  return OkStatus();
}

}  // namespace kgr
