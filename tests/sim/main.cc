// kgr-sim: a deterministic simulation of a whole KED in one process (see
// docs/simulation.md). Each seed replays exactly:
//   kgr-sim --seed 42 [the same flags]
// prints the trace of a failing seed and the command line to replay it,
// and ends with one JSON summary line.
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "checker.h"
#include "rng.h"
#include "workload.h"
#include "workload_groups.h"

namespace kgr::sim {
namespace {

constexpr char kUsage[] = R"(usage: kgr-sim [flags]
  --seed S          first seed (default 1)
  --seeds N         run seeds S .. S+N-1 (default 1)
  --long            run seeds from S on until --seconds have passed
  --seconds T       time budget of --long (default 3600)
  --nodes N         nodes authorized over the run (default 6)
  --steps N         operations and faults per seed (default 300)
  --faults LIST     comma-separated fault classes (drop, dup, delay,
                    reorder, kill, restart, power, ks-kill, ks-restart,
                    ks-power, ks-away, broker, offline, partition, session,
                    clock, peer-kill, peer-stall), or a profile: all (default), none,
                    net (drop,dup,delay,reorder), ci (drop,dup,clock)
  --no-faults       same as --faults none
  --ops LIST        operation classes and profiles (default all):
                    authorize, request, renew, send, rotate, ks-rotate,
                    allow, withdraw, revoke (profile pairs); group-create,
                    group-add, group-remove, group-batch, group-delete,
                    group-send (profile groups); all = pairs,groups
  --fault-rate X    scales how often faults happen (default 1)
  --heal-s N        simulated seconds of healing before the liveness
                    checks (default 600)
  --ks-instances K  KS instances of a cluster over one simulated shared
                    store (default 1: the single KS); with K > 1 the fault
                    classes peer-kill and peer-stall act on instances 2..K
  --reg-backoff-cap-ms N  the node daemon's registration back-off cap
                    (default 60000)
  --trace N         events kept for a failing seed's trace (default 300)
  --traces N        failing seeds whose trace is printed (default 1)
  --invariants LIST  check only these invariants (default: all of
                    data_accepted_once, one_key_per_request,
                    forbidden_pair_gets_nothing, no_secret_on_wire,
                    no_secret_in_logs, every_node_registers,
                    pairs_converge, fresh_pairing_works, processes_restart,
                    group_backward_secrecy, group_forward_secrecy,
                    group_one_key_per_epoch, group_data_accepted_once,
                    groups_converge)
  --expect LIST     bug-finding runs: stop as soon as each listed invariant
                    was violated by some seed, and exit 0 only then;
                    without it, exit 0 only if no seed failed
  --plant log|wire  check the checker: leak an NTAG there at step 10
  --bug ks-keeps-removed  check the checker: the AC's group removals do
                    not reach the KS (a KS that does not rekey on leave);
                    group_forward_secrecy must fail
  --log-level L     library log level seen by the checker (default info)
)";

// The fault classes the current main survives in sim_seeds (with every
// operation but the rotations; see docs/simulation.md).
const char kCiProfile[] = "drop,dup,clock";

// A comma list of names from `allowed` ("all": every one).
std::set<std::string> ParseList(const std::string& v,
                                const std::set<std::string>& allowed,
                                const char* what, bool* ok) {
  if (v == "all") return allowed;
  std::set<std::string> out;
  std::stringstream ss(v);
  for (std::string x; std::getline(ss, x, ',');) {
    if (x.empty()) continue;
    if (!allowed.count(x)) {
      std::fprintf(stderr, "kgr-sim: unknown %s '%s'\n", what, x.c_str());
      *ok = false;
    }
    out.insert(x);
  }
  return out;
}

// --ops: a comma list of operation classes and profiles ("pairs": the
// operations on pairs and nodes, "groups": the group operations, "all").
std::set<std::string> ParseOps(const std::string& v, bool* ok) {
  std::set<std::string> out;
  std::stringstream ss(v);
  for (std::string x; std::getline(ss, x, ',');) {
    const std::set<std::string>* profile = x == "all"      ? &AllOpClasses()
                                           : x == "pairs"  ? &PairOpClasses()
                                           : x == "groups" ? &GroupOpClasses()
                                                           : nullptr;
    std::set<std::string> more =
        profile ? *profile : ParseList(x, AllOpClasses(), "operation", ok);
    out.insert(more.begin(), more.end());
  }
  return out;
}

struct Flags {
  RunConfig config;
  uint64_t seeds = 1;
  bool long_mode = false;
  double seconds = 3600;
  size_t trace = 300;
  int traces = 1;
  std::set<std::string> expect;
  std::vector<std::string> replay;  // flags to repeat in a replay command
};

class Args {
 public:
  Args(int argc, char** argv) : argc_(argc), argv_(argv) {}
  bool Next() { return ok && ++i_ < argc_; }
  std::string flag() const { return argv_[i_]; }
  std::string Value() {
    if (i_ + 1 >= argc_) {
      std::fprintf(stderr, "kgr-sim: %s needs a value\n", argv_[i_]);
      ok = false;
      return "0";
    }
    return argv_[++i_];
  }
  double Number() {
    std::string name = flag(), v = Value();
    char* end = nullptr;
    double d = std::strtod(v.c_str(), &end);
    if (v.empty() || *end != '\0' || d < 0) {
      std::fprintf(stderr, "kgr-sim: %s: not a number: %s\n", name.c_str(),
                   v.c_str());
      ok = false;
    }
    return d;
  }
  bool ok = true;

 private:
  int argc_;
  char** argv_;
  int i_ = 0;
};

// Flags that shape a run (repeated in the replay command). False if `a`
// is not one of them.
bool ParseRunFlag(const std::string& a, Args& args, Flags* f) {
  RunConfig& c = f->config;
  std::string v;
  if (a == "--no-faults") {
    c.faults.clear();
  } else if (a == "--nodes") {
    v = std::to_string(c.nodes = static_cast<int>(args.Number()));
  } else if (a == "--steps") {
    v = std::to_string(c.steps = static_cast<int>(args.Number()));
  } else if (a == "--fault-rate") {
    c.fault_rate = args.Number();
    v = std::to_string(c.fault_rate);
  } else if (a == "--heal-s") {
    double s = args.Number();
    c.heal_ms = static_cast<uint64_t>(s * 1000);
    v = std::to_string(s);
  } else if (a == "--ks-instances") {
    c.world.ks_instances = static_cast<int>(args.Number());
    if (c.world.ks_instances < 1 || c.world.ks_instances > 5) {
      std::fprintf(stderr, "kgr-sim: --ks-instances takes 1 to 5\n");
      args.ok = false;
    }
    v = std::to_string(c.world.ks_instances);
  } else if (a == "--reg-backoff-cap-ms") {
    c.world.reg_backoff_cap_ms = static_cast<uint64_t>(args.Number());
    v = std::to_string(c.world.reg_backoff_cap_ms);
  } else if (a == "--faults") {
    v = args.Value();
    std::string list = v == "ci"     ? kCiProfile
                       : v == "net"  ? "drop,dup,delay,reorder"
                       : v == "none" ? ""
                                     : v;
    c.faults = ParseList(list, AllFaultClasses(), "fault class", &args.ok);
  } else if (a == "--ops") {
    v = args.Value();
    c.ops = ParseOps(v, &args.ok);
  } else if (a == "--bug") {
    v = args.Value();
    if (v != "ks-keeps-removed") {
      std::fprintf(stderr, "kgr-sim: --bug takes ks-keeps-removed\n");
      args.ok = false;
    }
    c.world.bug_ks_keeps_removed = true;
  } else if (a == "--invariants") {
    v = args.Value();
    c.invariants =
        ParseList(v, Checker::AllInvariants(), "invariant", &args.ok);
  } else if (a == "--plant") {
    v = c.plant = args.Value();
    if (v != "log" && v != "wire") {
      std::fprintf(stderr, "kgr-sim: --plant takes log or wire\n");
      args.ok = false;
    }
  } else if (a == "--log-level") {
    v = args.Value();
    spdlog::set_level(spdlog::level::from_str(v));
  } else {
    return false;
  }
  f->replay.push_back(a);
  if (!v.empty()) f->replay.push_back(v);
  return true;
}

bool ParseArgs(int argc, char** argv, Flags* f) {
  f->config.faults = AllFaultClasses();
  Args args(argc, argv);
  while (args.Next()) {
    std::string a = args.flag();
    if (ParseRunFlag(a, args, f)) continue;
    if (a == "--seed") {
      f->config.seed = static_cast<uint64_t>(args.Number());
    } else if (a == "--seeds") {
      f->seeds = static_cast<uint64_t>(args.Number());
    } else if (a == "--long") {
      f->long_mode = true;
    } else if (a == "--seconds") {
      f->seconds = args.Number();
    } else if (a == "--trace") {
      f->trace = static_cast<size_t>(args.Number());
    } else if (a == "--traces") {
      f->traces = static_cast<int>(args.Number());
    } else if (a == "--expect") {
      f->expect = ParseList(args.Value(), Checker::AllInvariants(), "invariant",
                            &args.ok);
    } else if (a == "--help") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    } else {
      std::fprintf(stderr, "kgr-sim: unknown flag %s\n\n%s", a.c_str(), kUsage);
      return false;
    }
  }
  if (args.ok && f->config.nodes < 2) {
    std::fprintf(stderr, "kgr-sim: --nodes must be at least 2\n");
    return false;
  }
  return args.ok;
}

std::string ReplayCommand(const Flags& f, uint64_t seed) {
  std::string s = "kgr-sim --seed " + std::to_string(seed);
  for (const auto& x : f.replay) s += " " + x;
  return s;
}

// What the seeds of one invocation add up to.
struct Totals {
  uint64_t seeds = 0, steps = 0, sim_ms = 0, failures = 0;
  nlohmann::json by_invariant = nlohmann::json::object();
  std::map<std::string, uint64_t> coverage;
  NetStats net;

  void Add(const RunResult& r) {
    ++seeds;
    steps += r.steps;
    sim_ms += r.sim_ms;
    for (const auto& [k, v] : r.coverage) coverage[k] += v;
    net.published += r.net.published;
    net.delivered += r.net.delivered;
    net.dropped += r.net.dropped;
    net.duplicated += r.net.duplicated;
    net.delayed += r.net.delayed;
    net.held += r.net.held;
    net.lost_in_restart += r.net.lost_in_restart;
    net.lost_sessions += r.net.lost_sessions;
  }
  void AddFailure(const Flags& f, uint64_t seed, const RunResult& r) {
    ++failures;
    auto& inv = by_invariant[r.invariant];
    if (inv.is_null()) {
      inv = {{"count", 0},
             {"first_seed", seed},
             {"seeds_to_first", seeds},
             {"replay", ReplayCommand(f, seed)},
             {"detail", r.detail}};
    }
    inv["count"] = inv["count"].get<uint64_t>() + 1;
  }
  bool Found(const std::set<std::string>& expect) const {
    for (const auto& x : expect)
      if (!by_invariant.contains(x)) return false;
    return true;
  }
  nlohmann::json Summary(const Flags& f, double secs) const {
    std::vector<std::string> faults(f.config.faults.begin(),
                                    f.config.faults.end());
    return {{"seeds", seeds},
            {"first_seed", f.config.seed},
            {"seconds", secs},
            {"seeds_per_s", secs > 0 ? seeds / secs : 0.0},
            {"steps", steps},
            {"simulated_hours", sim_ms / 3.6e6},
            {"faults", faults},
            {"failures", failures},
            {"by_invariant", by_invariant},
            {"coverage", coverage},
            {"net",
             {{"published", net.published},
              {"delivered", net.delivered},
              {"dropped", net.dropped},
              {"duplicated", net.duplicated},
              {"delayed", net.delayed},
              {"held_for_offline", net.held},
              {"lost_in_broker_restart", net.lost_in_restart},
              {"lost_with_session", net.lost_sessions}}}};
  }
};

RunResult RunOnFreshThread(const RunConfig& cfg, Trace& trace) {
  RunResult r;
  // libkgr's per-thread pool of random bytes starts empty on a new thread.
  std::thread([&] {
    UseDeterministicOpenSslRandom(cfg.seed);
    r = RunSeed(cfg, trace);
  }).join();
  return r;
}

int Main(int argc, char** argv) {
  spdlog::set_level(spdlog::level::info);
  Flags f;
  if (!ParseArgs(argc, argv, &f)) return 2;
  auto t0 = std::chrono::steady_clock::now();
  auto elapsed = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0)
        .count();
  };
  Totals totals;
  int traces_left = f.traces;
  for (uint64_t seed = f.config.seed;; ++seed) {
    if (f.long_mode ? elapsed() >= f.seconds
                    : seed >= f.config.seed + f.seeds) {
      break;
    }
    RunConfig cfg = f.config;
    cfg.seed = seed;
    Trace trace(f.trace);
    RunResult r = RunOnFreshThread(cfg, trace);
    totals.Add(r);
    if (r.ok) continue;
    bool found_before = !f.expect.empty() && totals.Found(f.expect);
    totals.AddFailure(f, seed, r);
    std::printf("FAIL seed %llu: %s: %s\n",
                static_cast<unsigned long long>(seed), r.invariant.c_str(),
                r.detail.c_str());
    if (traces_left-- > 0) {
      std::printf("trace (last %zu events, simulated seconds):\n", f.trace);
      trace.Print(stdout);
      std::printf("replay: %s\n", ReplayCommand(f, seed).c_str());
    }
    std::fflush(stdout);
    // Bug-finding runs stop once every expected invariant was violated.
    if (!f.expect.empty() && !found_before && totals.Found(f.expect)) break;
  }
  std::printf("%s\n", totals.Summary(f, elapsed()).dump().c_str());
  if (!f.expect.empty()) return totals.Found(f.expect) ? 0 : 1;
  return totals.failures == 0 ? 0 : 1;
}

}  // namespace
}  // namespace kgr::sim

int main(int argc, char** argv) { return kgr::sim::Main(argc, argv); }
