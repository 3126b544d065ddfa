#include "workload.h"

#include <spdlog/sinks/base_sink.h>
#include <spdlog/spdlog.h>

#include <functional>
#include <mutex>
#include <vector>

#include "checker.h"
#include "workload_groups.h"

namespace kgr::sim {
namespace {

// Every log line of the library goes through the checker (secrets) and,
// from warnings up, into the trace.
class CheckingSink : public spdlog::sinks::base_sink<std::mutex> {
 public:
  void Attach(Checker* c, World* w) {
    std::lock_guard<std::mutex> lock(mutex_);
    checker_ = c;
    world_ = w;
  }

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    if (checker_ == nullptr) return;
    std::string_view line(msg.payload.data(), msg.payload.size());
    checker_->OnLog(line);
    if (msg.level >= spdlog::level::warn && world_ != nullptr) {
      world_->Note("log: " + std::string(line));
    }
  }
  void flush_() override {}

 private:
  Checker* checker_ = nullptr;
  World* world_ = nullptr;
};

std::shared_ptr<CheckingSink> Sink() {
  static auto sink = [] {
    auto s = std::make_shared<CheckingSink>();
    auto logger = std::make_shared<spdlog::logger>("kgr-sim", s);
    logger->set_level(spdlog::get_level());
    spdlog::set_default_logger(logger);
    return s;
  }();
  return sink;
}

class Schedule {
 public:
  Schedule(World& w, Checker& c, const RunConfig& cfg)
      : w_(w), c_(c), cfg_(cfg), rng_(w.rng()), groups_(w, w.rng()) {}

  bool On(const char* fault) const { return cfg_.faults.count(fault) > 0; }

  // An index of a node that runs (or -1).
  int UpNode() {
    std::vector<int> v;
    for (auto& n : w_.nodes())
      if (n->up && !n->revoked) v.push_back(n->index);
    return v.empty() ? -1 : v[rng_.Below(v.size())];
  }
  int AnyNode() {
    if (w_.nodes().empty()) return -1;
    return static_cast<int>(rng_.Below(w_.nodes().size()));
  }
  // An allowed pair (a up), or {-1, -1}.
  std::pair<int, int> AllowedPair() {
    std::vector<std::pair<int, int>> v;
    for (auto& a : w_.nodes()) {
      if (!a->up || a->revoked) continue;
      for (auto& b : w_.nodes()) {
        if (a->peer_file.count(b->n_id) && !b->revoked)
          v.push_back({a->index, b->index});
      }
    }
    return v.empty() ? std::make_pair(-1, -1) : v[rng_.Below(v.size())];
  }
  int Live() const {
    int k = 0;
    for (auto& n : w_.nodes()) k += !n->revoked;
    return k;
  }

  // How long a node or link stays away: mostly short, sometimes minutes.
  uint64_t AwayMs() {
    double r = rng_.Unit();
    if (r < 0.6) return rng_.Range(100, 5'000);
    if (r < 0.9) return rng_.Range(5'000, 60'000);
    return rng_.Range(60'000, 300'000);
  }

  void Authorize() {
    if (static_cast<int>(w_.nodes().size()) >= cfg_.nodes) return;
    std::vector<int> peers;
    for (auto& n : w_.nodes())
      if (!n->revoked && rng_.Chance(0.6)) peers.push_back(n->index);
    w_.Count("op.authorize");
    auto r = w_.Authorize(peers);
    w_.Count(std::string("op.authorize.") + (r.ok() ? "ok" : "failed"));
    if (!r.ok()) w_.Note("AC authorize failed: " + r.status().ToString());
  }

  void NodeDown(Stop how) {
    int i = UpNode();
    if (i < 0) return;
    w_.StopNode(i, how);
    uint64_t d = how == Stop::kClean ? rng_.Range(50, 2'000) : AwayMs();
    w_.At(w_.now_ms() + d, "restart " + w_.nodes()[i]->name, [this, i] {
      Status st = w_.StartNode(i);
      if (!st.ok()) c_.Fail("processes_restart", st.ToString());
    });
  }

  void KsDown(Stop how, uint64_t d, const char* what) {
    if (!w_.ks().up) return;
    w_.StopKs(how);
    if (On("session") && rng_.Chance(0.3)) {
      w_.Note("broker forgets the KS's session");
      w_.Count("fault.session");
      w_.net().LoseSession("ks");
    }
    w_.At(w_.now_ms() + d, what, [this] {
      Status st = w_.StartKs();
      if (!st.ok()) c_.Fail("processes_restart", "KS: " + st.ToString());
    });
  }

  // The cluster's other KS instances (--ks-instances > 1).
  int UpPeer() {
    std::vector<int> v;
    for (size_t i = 0; i < w_.ks_peers().size(); ++i)
      if (w_.ks_peers()[i]->up) v.push_back(static_cast<int>(i));
    return v.empty() ? -1 : v[rng_.Below(v.size())];
  }
  void PeerDown() {
    int i = UpPeer();
    if (i < 0) return;
    const Stop how = rng_.Chance(0.5)   ? Stop::kKill
                     : rng_.Chance(0.5) ? Stop::kClean
                                        : Stop::kPowerLoss;
    w_.StopPeer(i, how);
    w_.At(w_.now_ms() + rng_.Range(100, 10'000),
          "restart " + w_.ks_peers()[i]->name, [this, i] {
            if (w_.ks_peers()[i]->up) return;
            Status st = w_.StartPeer(i);
            if (!st.ok()) c_.Fail("processes_restart", st.ToString());
          });
  }
  // A member that hangs with its connection up: the broker keeps handing
  // it frames, which it handles late when it comes back.
  void PeerStall() {
    int i = UpPeer();
    if (i < 0) return;
    w_.StallPeer(i, true);
    w_.At(w_.now_ms() + rng_.Range(500, 30'000),
          w_.ks_peers()[i]->name + " resumes",
          [this, i] { w_.StallPeer(i, false); });
  }

  void LinkDown(const std::string& name, uint64_t d) {
    w_.net().SetLinkUp(name, false);
    w_.At(w_.now_ms() + d, name + " back online",
          [this, name] { w_.net().SetLinkUp(name, true); });
  }

  void Offline() {
    int i = AnyNode();
    if (i < 0) return;
    const std::string& name = w_.nodes()[i]->name;
    w_.Count("fault.offline");
    w_.Note(name + " offline");
    LinkDown(name, AwayMs());
    if (On("session") && rng_.Chance(0.3)) {
      w_.Count("fault.session");
      w_.Note("broker forgets the session of " + name);
      w_.net().LoseSession(name);
    }
  }

  void Partition() {
    uint64_t d = rng_.Range(1'000, 60'000);
    w_.Count("fault.partition");
    std::string who;
    for (auto& n : w_.nodes()) {
      if (rng_.Chance(0.5)) {
        LinkDown(n->name, d);
        who += " " + n->name;
      }
    }
    if (rng_.Chance(0.3)) {
      LinkDown("ks", d);
      who += " ks";
    }
    w_.Note("partition for " + std::to_string(d) + " ms:" + who);
  }

  void Broker() {
    if (!w_.net().broker_up()) return;
    uint64_t d = rng_.Range(1'000, 30'000);
    w_.Count("fault.broker_restart");
    w_.Note("broker restarts (" + std::to_string(d) + " ms)");
    w_.net().SetBrokerUp(false);
    w_.At(w_.now_ms() + d, "broker up", [this] { w_.net().SetBrokerUp(true); });
  }

  void ClockJump() {
    int64_t us = static_cast<int64_t>(rng_.Range(1'000, 600'000)) * 1000;
    if (rng_.Chance(0.5)) us = -us;
    w_.Count("fault.clock_jump");
    int i = rng_.Below(w_.nodes().size() + 1) - 1;
    SkewClock& clock = i < 0 ? w_.ks().clock : w_.nodes()[i]->clock;
    w_.Note(std::string(i < 0 ? "ks" : w_.nodes()[i]->name) +
            ": wall clock jumps " + std::to_string(us / 1000) + " ms");
    clock.Jump(us);
  }

  void Step() {
    struct Choice {
      double weight;
      std::function<void()> run;
    };
    const double f = cfg_.fault_rate;
    std::vector<Choice> c;
    auto op = [&](const char* name, double weight, std::function<void()> fn) {
      if (cfg_.ops.count(name)) c.push_back({weight, std::move(fn)});
    };
    op("authorize", 4, [this] { Authorize(); });
    op("request", 14, [this] { Pair(false); });
    op("renew", 12, [this] { Pair(true); });
    op("send", 25, [this] { Data(); });
    op("rotate", 2, [this] {
      if (int i = UpNode(); i >= 0) w_.Rotate(i);
    });
    op("ks-rotate", 1, [this] {
      if (int i = AnyNode(); i >= 0) Ac("ks_rotation", w_.KsAsksRotation(i));
    });
    op("allow", 3, [this] { Allow(); });
    op("withdraw", 0.7, [this] {
      auto [a, b] = AllowedPair();
      if (a >= 0) Ac("withdraw", w_.WithdrawPair(a, b));
    });
    op("revoke", 0.3, [this] {
      int i = AnyNode();
      if (i >= 0 && Live() > 3 && !w_.nodes()[i]->revoked) {
        Ac("revoke", w_.Revoke(i));
      }
    });
    op("group-create", 1, [this] { groups_.Create(); });
    op("group-add", 2.5, [this] { groups_.Add(); });
    op("group-remove", 1.5, [this] { groups_.Remove(); });
    op("group-batch", 1, [this] { groups_.Batch(); });
    op("group-delete", 0.2, [this] { groups_.Delete(); });
    op("group-send", 8, [this] { groups_.Send(); });
    auto fault = [&](const char* name, double weight,
                     std::function<void()> fn) {
      if (On(name)) c.push_back({weight * f, std::move(fn)});
    };
    fault("kill", 3, [this] { NodeDown(Stop::kKill); });
    fault("restart", 2, [this] { NodeDown(Stop::kClean); });
    fault("power", 2, [this] { NodeDown(Stop::kPowerLoss); });
    fault("ks-kill", 1, [this] {
      KsDown(Stop::kKill, rng_.Range(100, 10'000), "KS restarts");
    });
    fault("ks-restart", 1, [this] {
      KsDown(Stop::kClean, rng_.Range(100, 3'000), "KS restarts");
    });
    fault("ks-power", 1, [this] {
      KsDown(Stop::kPowerLoss, rng_.Range(100, 10'000), "KS restarts");
    });
    fault("ks-away", 0.5, [this] {
      w_.Count("fault.ks_away");
      KsDown(rng_.Chance(0.5) ? Stop::kKill : Stop::kClean,
             rng_.Range(60'000, 300'000), "KS back after minutes");
    });
    fault("broker", 0.7, [this] { Broker(); });
    fault("offline", 3, [this] { Offline(); });
    fault("partition", 1, [this] { Partition(); });
    fault("clock", 0.7, [this] { ClockJump(); });
    if (!w_.ks_peers().empty()) {
      fault("peer-kill", 1.5, [this] { PeerDown(); });
      fault("peer-stall", 1.5, [this] { PeerStall(); });
    }
    double total = 0;
    for (auto& x : c) total += x.weight;
    double r = rng_.Unit() * total;
    for (auto& x : c) {
      if ((r -= x.weight) < 0) return x.run();
    }
  }

  void Pair(bool renewal) {
    auto [a, b] = AllowedPair();
    if (a >= 0) w_.RequestKey(a, b, renewal);
  }
  void Data() {
    auto [a, b] = AllowedPair();
    if (a >= 0) w_.Send(a, b);
  }
  void Allow() {
    int a = AnyNode(), b = AnyNode();
    if (a < 0 || a == b || w_.nodes()[a]->revoked || w_.nodes()[b]->revoked ||
        w_.Forbidden(w_.nodes()[a]->n_id, w_.nodes()[b]->n_id)) {
      return;
    }
    Ac("allow", w_.AllowPair(a, b));
  }
  void Ac(const std::string& op, const Status& st) {
    w_.Count("op." + op);
    w_.Count("op." + op + "." + (st.ok() ? "ok" : "failed"));
    if (!st.ok()) w_.Note("AC " + op + " failed: " + st.ToString());
  }

 private:
  World& w_;
  Checker& c_;
  const RunConfig& cfg_;
  Rng& rng_;
  GroupOps groups_;
};

void ApplyNetFaults(World& w, const RunConfig& cfg) {
  NetFaults& f = w.net().faults;
  auto on = [&](const char* x) { return cfg.faults.count(x) > 0; };
  double r = cfg.fault_rate;
  f.drop = on("drop") ? 0.02 * r : 0;
  f.dup = on("dup") ? 0.02 * r : 0;
  f.delay = on("delay") ? 0.02 * r : 0;
  f.delay_max_ms = (on("delay") || on("dup")) ? 30'000 : 0;
  f.latency_min_ms = 1;
  f.latency_max_ms = on("reorder") ? 50 : 1;
}

void Plant(World& w, const std::string& where) {
  SimNode& n = *w.nodes()[0];
  w.Note("planting the NTAG of " + n.name + " in the " + where);
  if (where == "log") {
    std::string hex;
    for (uint8_t b : n.ntag.span()) {
      static const char kDigits[] = "0123456789abcdef";
      hex += kDigits[b >> 4];
      hex += kDigits[b & 15];
    }
    spdlog::info("planted: ntag={}", hex);
  } else {
    (void)n.transport->Publish("kgr/planted", n.ntag.span());
  }
}

}  // namespace

const std::set<std::string>& PairOpClasses() {
  static const std::set<std::string> all = {
      "authorize", "request", "renew",    "send",  "rotate",
      "ks-rotate", "allow",   "withdraw", "revoke"};
  return all;
}

const std::set<std::string>& AllOpClasses() {
  static const std::set<std::string> all = [] {
    std::set<std::string> s = PairOpClasses();
    s.insert(GroupOpClasses().begin(), GroupOpClasses().end());
    return s;
  }();
  return all;
}

const std::set<std::string>& AllFaultClasses() {
  static const std::set<std::string> all = {
      "drop",    "dup",       "delay",     "reorder",    "kill",
      "restart", "power",     "ks-kill",   "ks-restart", "ks-power",
      "ks-away", "broker",    "offline",   "partition",  "session",
      "clock",   "peer-kill", "peer-stall"};
  return all;
}

RunResult RunSeed(const RunConfig& cfg, Trace& trace) {
  RunResult result;
  Checker checker;
  World w(cfg.seed, cfg.world, trace, checker);
  checker.Attach(&w);
  checker.Only(cfg.invariants);
  Sink()->Attach(&checker, &w);
  Status st = w.Init();
  if (!st.ok()) checker.Fail("setup", st.ToString());
  ApplyNetFaults(w, cfg);
  Schedule s(w, checker, cfg);
  for (int i = 0; i < std::max(2, cfg.nodes / 2) && !checker.failed(); ++i) {
    s.Authorize();
    w.RunFor(w.rng().Range(10, 500));
  }
  for (; result.steps < cfg.steps && !checker.failed(); ++result.steps) {
    if (result.steps == 10 && !cfg.plant.empty()) Plant(w, cfg.plant);
    s.Step();
    w.RunFor(w.rng().Range(10, 1'500));
  }
  if (!checker.failed()) {
    w.Heal();
    w.RunFor(cfg.heal_ms);
    checker.CheckLiveness();
  }
  Sink()->Attach(nullptr, nullptr);
  result.ok = !checker.failed();
  result.invariant = checker.invariant();
  result.detail = checker.detail();
  result.sim_ms = w.now_ms();
  result.coverage = w.coverage();
  result.net = w.net().stats();
  return result;
}

}  // namespace kgr::sim
