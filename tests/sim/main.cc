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

namespace kgr::sim {
namespace {

constexpr char kUsage[] = R"(usage: kgr-sim [flags]
  --seed S          first seed (default 1)
  --seeds N         run seeds S .. S+N-1 (default 1)
  --long            run seeds from S on until --seconds have passed
  --seconds T       time budget of --long (default 3600)
  --nodes N         nodes authorized over the run (default 6)
  --steps N         operations and faults per seed (default 300)
  --faults LIST     comma-separated fault classes, or a profile:
                    all (default), ci, net, none
  --no-faults       same as --faults none
  --ops LIST        operation classes (default all): authorize, request,
                    renew, send, rotate, ks-rotate, allow, withdraw, revoke
  --fault-rate X    scales how often faults happen (default 1)
  --heal-s N        simulated seconds of healing before the liveness
                    checks (default 600)
  --reg-backoff-cap-ms N  the node daemon's registration back-off cap
                    (default 60000)
  --trace N         events kept for a failing seed's trace (default 300)
  --traces N        failing seeds whose trace is printed (default 1)
  --invariants LIST  check only these invariants (default: all of
                    data_accepted_once, one_key_per_request,
                    forbidden_pair_gets_nothing, no_secret_on_wire,
                    no_secret_in_logs, every_node_registers,
                    pairs_converge, fresh_pairing_works, processes_restart)
  --expect LIST     bug-finding runs: stop as soon as each listed invariant
                    was violated by some seed, and exit 0 only then;
                    without it, exit 0 only if no seed failed
  --plant log|wire  check the checker: leak an NTAG there at step 10
  --log-level L     library log level seen by the checker (default info)
)";

// Classes the current main survives (see docs/simulation.md).
const char kCiProfile[] =
    "drop,dup,reorder,kill,restart,power,ks-kill,ks-restart,ks-power,broker";

std::set<std::string> ParseFaults(const std::string& v, bool* ok) {
  *ok = true;
  if (v == "all") return AllFaultClasses();
  if (v == "none") return {};
  std::string list = v == "ci" ? kCiProfile : v == "net" ? "drop,dup,delay,reorder" : v;
  std::set<std::string> out;
  std::stringstream ss(list);
  for (std::string x; std::getline(ss, x, ',');) {
    if (x.empty()) continue;
    if (!AllFaultClasses().count(x)) {
      std::fprintf(stderr, "kgr-sim: unknown fault class '%s'\n", x.c_str());
      *ok = false;
    }
    out.insert(x);
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

bool ParseArgs(int argc, char** argv, Flags* f) {
  bool ok = true;
  f->config.faults = AllFaultClasses();
  for (int i = 1; i < argc && ok; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "kgr-sim: %s needs a value\n", a.c_str());
        ok = false;
        return "0";
      }
      return argv[++i];
    };
    auto number = [&]() -> double {
      std::string v = value();
      char* end = nullptr;
      double d = std::strtod(v.c_str(), &end);
      if (v.empty() || *end != '\0' || d < 0) {
        std::fprintf(stderr, "kgr-sim: %s: not a number: %s\n", a.c_str(),
                     v.c_str());
        ok = false;
      }
      return d;
    };
    auto keep = [&](const std::string& v) {
      f->replay.push_back(a);
      f->replay.push_back(v);
    };
    if (a == "--seed") {
      f->config.seed = static_cast<uint64_t>(number());
    } else if (a == "--seeds") {
      f->seeds = static_cast<uint64_t>(number());
    } else if (a == "--long") {
      f->long_mode = true;
    } else if (a == "--seconds") {
      f->seconds = number();
    } else if (a == "--nodes") {
      f->config.nodes = static_cast<int>(number());
      keep(argv[i]);
    } else if (a == "--steps") {
      f->config.steps = static_cast<int>(number());
      keep(argv[i]);
    } else if (a == "--faults") {
      std::string v = value();
      f->config.faults = ParseFaults(v, &ok);
      keep(v);
    } else if (a == "--ops") {
      std::string v = value();
      f->config.ops.clear();
      std::stringstream ss(v == "all" ? std::string() : v);
      if (v == "all") f->config.ops = AllOpClasses();
      for (std::string x; std::getline(ss, x, ',');) {
        if (!AllOpClasses().count(x)) {
          std::fprintf(stderr, "kgr-sim: unknown operation '%s'\n", x.c_str());
          ok = false;
        }
        f->config.ops.insert(x);
      }
      keep(v);
    } else if (a == "--no-faults") {
      f->config.faults.clear();
      f->replay.push_back(a);
    } else if (a == "--fault-rate") {
      f->config.fault_rate = number();
      keep(argv[i]);
    } else if (a == "--heal-s") {
      f->config.heal_ms = static_cast<uint64_t>(number() * 1000);
      keep(argv[i]);
    } else if (a == "--reg-backoff-cap-ms") {
      f->config.world.reg_backoff_cap_ms = static_cast<uint64_t>(number());
      keep(argv[i]);
    } else if (a == "--trace") {
      f->trace = static_cast<size_t>(number());
    } else if (a == "--traces") {
      f->traces = static_cast<int>(number());
    } else if (a == "--invariants") {
      std::string v = value();
      std::stringstream ss(v);
      for (std::string x; std::getline(ss, x, ',');) {
        if (!Checker::AllInvariants().count(x)) {
          std::fprintf(stderr, "kgr-sim: unknown invariant '%s'\n", x.c_str());
          ok = false;
        }
        f->config.invariants.insert(x);
      }
      keep(v);
    } else if (a == "--plant") {
      f->config.plant = value();
      if (f->config.plant != "log" && f->config.plant != "wire") {
        std::fprintf(stderr, "kgr-sim: --plant takes log or wire\n");
        ok = false;
      }
      keep(f->config.plant);
    } else if (a == "--expect") {
      std::stringstream ss(value());
      for (std::string x; std::getline(ss, x, ',');) f->expect.insert(x);
    } else if (a == "--log-level") {
      std::string v = value();
      spdlog::set_level(spdlog::level::from_str(v));
      keep(v);
    } else if (a == "--help") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    } else {
      std::fprintf(stderr, "kgr-sim: unknown flag %s\n\n%s", a.c_str(), kUsage);
      ok = false;
    }
  }
  if (ok && f->config.nodes < 2) {
    std::fprintf(stderr, "kgr-sim: --nodes must be at least 2\n");
    ok = false;
  }
  return ok;
}

std::string ReplayCommand(const Flags& f, uint64_t seed) {
  std::string s = "kgr-sim --seed " + std::to_string(seed);
  for (const auto& x : f.replay) s += " " + x;
  return s;
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
  nlohmann::json by_invariant = nlohmann::json::object();
  std::map<std::string, uint64_t> coverage;
  NetStats net;
  uint64_t seeds_run = 0, steps = 0, sim_ms = 0, failures = 0;
  int traces_left = f.traces;
  for (uint64_t seed = f.config.seed;; ++seed) {
    if (f.long_mode ? elapsed() >= f.seconds
                    : seed >= f.config.seed + f.seeds) {
      break;
    }
    RunConfig cfg = f.config;
    cfg.seed = seed;
    Trace trace(f.trace);
    RunResult r;
    // A fresh thread per seed: libkgr's per-thread random pool starts empty.
    std::thread([&] {
      UseDeterministicOpenSslRandom(seed);
      r = RunSeed(cfg, trace);
    }).join();
    ++seeds_run;
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
    if (r.ok) continue;
    bool all_expected_before = !f.expect.empty();
    for (const auto& x : f.expect) all_expected_before &= by_invariant.contains(x);
    ++failures;
    auto& inv = by_invariant[r.invariant];
    if (inv.is_null()) {
      inv = {{"count", 0},
             {"first_seed", seed},
             {"seeds_to_first", seeds_run},
             {"replay", ReplayCommand(f, seed)},
             {"detail", r.detail}};
    }
    inv["count"] = inv["count"].get<uint64_t>() + 1;
    std::printf("FAIL seed %llu: %s: %s\n", static_cast<unsigned long long>(seed),
                r.invariant.c_str(), r.detail.c_str());
    if (traces_left-- > 0) {
      std::printf("trace (last %zu events, simulated seconds):\n", f.trace);
      trace.Print(stdout);
      std::printf("replay: %s\n", ReplayCommand(f, seed).c_str());
    }
    std::fflush(stdout);
    bool all_expected = !f.expect.empty();
    for (const auto& x : f.expect) all_expected &= by_invariant.contains(x);
    if (all_expected && !all_expected_before) break;  // found them all
  }
  double secs = elapsed();
  std::vector<std::string> faults(f.config.faults.begin(), f.config.faults.end());
  nlohmann::json summary = {
      {"seeds", seeds_run},
      {"first_seed", f.config.seed},
      {"seconds", secs},
      {"seeds_per_s", secs > 0 ? seeds_run / secs : 0.0},
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
  std::printf("%s\n", summary.dump().c_str());
  if (!f.expect.empty()) {
    for (const auto& x : f.expect) {
      if (!by_invariant.contains(x)) return 1;
    }
    return 0;
  }
  return failures == 0 ? 0 : 1;
}

}  // namespace
}  // namespace kgr::sim

int main(int argc, char** argv) { return kgr::sim::Main(argc, argv); }
