// kgr-ks run: the KS daemon. Wires the TPM, the stores, the CMS endpoint,
// the MQTT transport, the KeyServer with its inbox, the frame counter file
// and the control socket, and runs them on one event loop until a signal.
#include <spdlog/spdlog.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <memory>
#include <thread>
#include <utility>

#include "daemon/counter_saver.h"
#include "daemon/journal_log.h"
#include "daemon/ks_backup.h"
#include "daemon/ks_cluster_ops.h"
#include "daemon/ks_state.h"
#include "daemon/metrics_endpoint.h"
#include "daemon/reload.h"
#include "daemon/service_notifier.h"
#include "daemon/wiring.h"
#include "kgr/cli.h"
#include "kgr/clock.h"
#include "kgr/cms.h"
#include "kgr/control.h"
#include "kgr/counter_file.h"
#include "kgr/credentials.h"
#include "kgr/ks_daemon.h"
#include "kgr/topic.h"

namespace kgr {
namespace {

// Start-up phases, logged once serving (docs/performance.md item 5).
class PhaseTimer {
 public:
  // Milliseconds since the previous call (or construction).
  double Next() {
    Clock::time_point now = Clock::now();
    double ms = std::chrono::duration<double, std::milli>(now - start_).count();
    start_ = now;
    return ms;
  }

 private:
  using Clock = std::chrono::steady_clock;
  Clock::time_point start_ = Clock::now();
};

// One KS process, built step by step in this order (and torn down in the
// reverse one).
class KsService {
 public:
  KsService(const KsOptions& o, EventLoop& loop)
      : o_(o),
        loop_(loop),
        counter_(*DefaultFileSystem(), o.daemon.state_dir, "ks") {}
  ~KsService() {
    if (cluster_op_.joinable()) cluster_op_.join();
  }

  // The state directory's lock, the TPM and the KS's own data in it.
  StatusOr<OwnData> OpenTpmAndOwnData() {
    KGR_ASSIGN_OR_RETURN(OwnData own,
                         OpenOwnData(o_.daemon, Role::kKeyServer, lock_, tpm_));
    KGR_ASSIGN_OR_RETURN(kedk_, tpm_->KedkPublic());
    KGR_RETURN_IF_ERROR(MixTpmEntropy(*tpm_));
    return own;
  }

  Status OpenStores(const OwnData& own) {
    KGR_ASSIGN_OR_RETURN(stores_, OpenKsState(o_, own));
    return OkStatus();
  }

  // The certificates, the MQTT client, the KeyServer and its inbox.
  Status Build(OwnData own) {
    for (const auto& bad : stores_.state->nodes().corrupt_records()) {
      spdlog::error("ks: node_desc record {} is corrupt and ignored: {}",
                    bad.index, bad.status.message());
    }
    const BrokerOptions& b = o_.daemon.broker;
    KGR_ASSIGN_OR_RETURN(cms_,
                         CmsEndpoint::Load(b.ca_file, b.cert_file, b.key_file));
    // Clustered, each instance needs its own MQTT session (client id); the
    // broker's user name stays the certificate's CN "ks" for the ACL. The
    // session is clean: a killed instance must leave the shared group at
    // once, not keep its turn in the round robin (docs/cluster.md).
    const KeyServerOptions& k = o_.key_server;
    const bool clustered = !k.share_group.empty();
    const std::string client_id =
        clustered ? "ks-" + std::to_string(k.counter_lane) : "ks";
    KGR_ASSIGN_OR_RETURN(transport_, OpenTransport(b, client_id, clustered));
    KGR_ASSIGN_OR_RETURN(backups_, KsBackups::Create(o_, own));
    KeyServerOptions ko = o_.key_server;
    // Groups live in this instance's own files and memory: a cluster, or a
    // state on etcd, serves none until they are shared (docs/cluster.md).
    const bool shared_state = stores_.state->ac_floor() != nullptr;
    ko.groups = clustered || shared_state ? nullptr : stores_.groups.get();
    KGR_ASSIGN_OR_RETURN(ko.counter_floor, counter_.LoadFloor());
    if (AcFloor* shared = stores_.state->ac_floor()) {  // etcd
      KGR_ASSIGN_OR_RETURN(ko.ac_counter_floor, shared->Load());
      ko.persist_ac_counter = [shared](uint64_t counter) {
        return shared->Raise(counter);
      };
      ko.ac_counter_shared = true;
    } else {
      const std::string ac_floor = AcCounterPath(o_.daemon.state_dir);
      KGR_ASSIGN_OR_RETURN(ko.ac_counter_floor,
                           LoadCounter(*DefaultFileSystem(), ac_floor));
      ko.persist_ac_counter = [ac_floor](uint64_t counter) {
        return SaveCounter(*DefaultFileSystem(), ac_floor, counter);
      };
    }
    ks_ = std::make_unique<KeyServer>(std::move(own), std::move(kedk_),
                                      *transport_, *stores_.state, cms_.get(),
                                      *SystemClock(), ko);
    // Bounded: a flood fills at most 16384 messages or 16 MiB, then is
    // dropped. Messages that arrive together are handled as one batch (one
    // fdatasync for all their new keys).
    inbox_ = std::make_unique<KeyServerInbox>(*ks_, loop_);
    transport_->SetHandler(
        [inbox = inbox_.get()](const std::string& topic, Bytes payload) {
          inbox->Push(topic, std::move(payload));
        });
    return OkStatus();
  }

  Status Connect() {
    KGR_RETURN_IF_ERROR(transport_->Connect());
    return ks_->Start();
  }

  Status StartControl() {
    KGR_ASSIGN_OR_RETURN(control_,
                         ServeControl(o_.daemon.state_dir, loop_,
                                      [this](const nlohmann::json& req,
                                             ControlServer::Respond respond) {
                                        Execute(req, respond);
                                      },
                                      {{"ok", false}, {"error", "busy"}}));
    return OkStatus();
  }

  // The Prometheus endpoint, if o.daemon.metrics_listen is set.
  Status StartMetrics() {
    KGR_ASSIGN_OR_RETURN(metrics_,
                         ServeMetrics(o_.daemon.metrics_listen, loop_,
                                      [this] { return MetricsTextOnLoop(); }));
    return OkStatus();
  }

  const KeyServer& ks() const { return *ks_; }
  size_t nodes() const { return stores_.state->nodes().size(); }

  // READY=1 to systemd (Type=notify), once serving or after a reload.
  void NotifyReady() {
    notifier_.Ready("serving, n_id " + FormatNodeId(ks_->n_id()) + ", " +
                    std::to_string(nodes()) + " nodes");
  }

  // SIGHUP, on the loop: the config read again and what can change at
  // runtime applied (log_level, gen_key_ttl_ms, max_pending,
  // node_frames_per_s, node_burst); a bad config is refused whole.
  void Reload() {
    notifier_.Reloading();
    StatusOr<KsOptions> n = ReloadOptions<KsOptions>();
    if (!n.ok()) {
      LogReloadRefused("ks", n.status());
    } else {
      SetLogLevel(n->daemon.log_level);
      ks_->SetLimits(n->key_server);
      const KeyServerOptions& k = n->key_server;
      spdlog::info(
          "ks: reloaded: log_level={} gen_key_ttl_ms={} max_pending={} "
          "node_frames_per_s={} node_burst={}",
          n->daemon.log_level, k.gen_key_ttl_ms, k.max_pending,
          k.node_frames_per_s, k.node_burst);
      std::vector<std::string> restart =
          RestartOnlyChanges(o_.daemon, n->daemon);
      if (n->topic_prefix != o_.topic_prefix) restart.push_back("topic_prefix");
      if (n->backup.dir != o_.backup.dir ||
          n->backup.recovery_public_file != o_.backup.recovery_public_file ||
          n->backup.interval_s != o_.backup.interval_s ||
          n->backup.keep != o_.backup.keep) {
        restart.push_back("backup_*");
      }
      LogRestartOnly("ks", restart);
    }
    NotifyReady();
  }

  // Runs the loop until a signal stops it: every second the KS's Tick,
  // the frame counter saved, the inbox's drops logged.
  void Serve() {
    uint64_t last_purge = 0;
    loop_.Run([&] {
      uint64_t now = SystemClock()->NowMonotonicMillis();
      notifier_.Tick(now);
      if (now - last_purge < 1000) return;
      ks_->Tick();
      if (stores_.nodes) {  // the files (on etcd: kgr-ks backup on demand)
        backups_->Tick(*stores_.nodes, ks_->stats().node_desc_changes);
      }
      last_purge = now;
      counter_.SaveIfChanged(ks_->last_counter());
      if (uint64_t d = inbox_->TakeDropped()) {
        counters_.inbox_dropped += d;
        spdlog::warn("ks: queue full: {} messages dropped in the last second",
                     d);
      }
    });
  }

  // A clean stop: the replay counters and the frame counter persisted.
  void Stop() {
    notifier_.Stopping();
    if (metrics_) metrics_->Stop();
    control_->Stop();
    if (cluster_op_.joinable()) cluster_op_.join();
    Status f = ks_->FlushCounters();
    if (f.ok()) f = counter_.Save(ks_->last_counter());
    if (!f.ok()) {
      spdlog::error("ks: replay counters not persisted: {}", f.ToString());
    }
    Status d = transport_->Disconnect();
    if (!d.ok()) spdlog::warn("ks: disconnect: {}", d.ToString());
  }

 private:
  std::string MetricsTextOnLoop() {
    MetricsText m;
    counters_.loop_dropped = loop_.dropped();
    AppendKsMetrics(*ks_, stores_.state->nodes(), stores_.state->gen_keys(),
                    o_.key_server, counters_, node_states_, m);
    AppendProcessMetrics(tpm_->counters(), m);
    return m.text();
  }

  // A control command (`kgr-ks status`, `kgr-ks rotate`), on the loop.
  void Execute(const nlohmann::json& req,
               const ControlServer::Respond& respond) {
    if (req.value("cmd", "") == "status") {
      nlohmann::json j = KsStatusJson(ks_.get(), stores_.state->nodes(),
                                      stores_.state->gen_keys(), ks_->n_id(),
                                      tpm_->counters());
      j["backup"] = backups_->StatusJson(ks_->stats().node_desc_changes);
      respond(j);
    } else if (req.value("cmd", "") == "backup") {
      respond(backups_->OnDemand(req, stores_.state->nodes()));
    } else if (req.value("cmd", "") == "cluster") {
      StartClusterOp(req, respond);
    } else if (req.value("cmd", "") == "rotate") {
      auto id = ParseNodeId(req.value("node", ""));
      Status r = id.ok() ? ks_->RequestRotation(*id) : id.status();
      respond({{"ok", r.ok()}, {"error", r.ToString()}});
    } else {
      respond({{"ok", false}, {"error", "unknown command"}});
    }
  }

  // `kgr-ks cluster approve|remove|leave|finish-rotation` while this
  // member runs (it holds the TPM and the state directory): on a thread of
  // its own, since a rotation waits for the instances and re-seals.
  void StartClusterOp(const nlohmann::json& req,
                      const ControlServer::Respond& respond) {
    if (!stores_.member) {
      respond({{"ok", false},
               {"error",
                "this KS is not a cluster member (kgr-ks cluster "
                "init or join)"}});
      return;
    }
    if (cluster_op_.joinable()) {
      if (cluster_busy_) {
        respond({{"ok", false}, {"error", "another cluster step runs"}});
        return;
      }
      cluster_op_.join();
    }
    cluster_busy_ = true;
    cluster_op_ = std::thread([this, req, respond] {
      respond(RunClusterOp(*stores_.member, req));
      cluster_busy_ = false;
    });
  }

  const KsOptions& o_;
  EventLoop& loop_;
  std::thread cluster_op_;
  std::atomic<bool> cluster_busy_{false};
  CounterSaver counter_;
  std::unique_ptr<DirLock> lock_;
  std::unique_ptr<Tpm> tpm_;
  Bytes kedk_;
  KsStores stores_;
  std::unique_ptr<CmsEndpoint> cms_;
  std::unique_ptr<Transport> transport_;
  std::unique_ptr<KeyServer> ks_;
  std::unique_ptr<KeyServerInbox> inbox_;
  std::unique_ptr<KsBackups> backups_;
  std::unique_ptr<ControlServer> control_;
  ServiceNotifier notifier_;
  KsDaemonCounters counters_;
  NodeStateCount node_states_;
  std::unique_ptr<MetricsServer> metrics_;
};

}  // namespace

Status KsRun(const KsOptions& o) {
  PhaseTimer phase;
  EventLoop loop;
  KsService svc(o, loop);  // starts no thread
  StopLoopOnSignals(loop, [&svc] { svc.Reload(); });
  KGR_ASSIGN_OR_RETURN(OwnData own, svc.OpenTpmAndOwnData());
  SetJournalNodeField(FormatNodeId(own.identity.n_id));
  const double tpm_ms = phase.Next();
  KGR_RETURN_IF_ERROR(svc.OpenStores(own));
  const double stores_ms = phase.Next();
  KGR_RETURN_IF_ERROR(svc.Build(std::move(own)));
  const double setup_ms = phase.Next();
  KGR_RETURN_IF_ERROR(svc.Connect());
  const double connect_ms = phase.Next();
  KGR_RETURN_IF_ERROR(svc.StartControl());
  KGR_RETURN_IF_ERROR(svc.StartMetrics());
  std::printf("kgr-ks ready: n_id=%s nodes=%zu\n",
              FormatNodeId(svc.ks().n_id()).c_str(), svc.nodes());
  std::fflush(stdout);
  svc.NotifyReady();
  spdlog::info(
      "ks: start-up: TPM {:.1f} ms, stores {:.1f} ms, certificates and "
      "MQTT client {:.1f} ms, connect and subscribe {:.1f} ms, control "
      "socket {:.1f} ms",
      tpm_ms, stores_ms, setup_ms, connect_ms, phase.Next());
  svc.Serve();
  svc.Stop();
  spdlog::info("ks: stopped");
  return OkStatus();
}

}  // namespace kgr
