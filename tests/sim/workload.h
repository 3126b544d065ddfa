// One simulation run: a seeded random schedule of the AC's and the nodes'
// operations interleaved with faults, then a heal phase (no faults, time
// to recover) and the liveness checks.
#ifndef KGR_TESTS_SIM_WORKLOAD_H_
#define KGR_TESTS_SIM_WORKLOAD_H_

#include <cstdint>
#include <map>
#include <set>
#include <string>

#include "net.h"
#include "trace.h"
#include "world.h"

namespace kgr::sim {

// Fault classes, by name (the --faults flag): message faults
//   drop, dup, delay, reorder
// process faults
//   kill, restart, power          (a node: SIGKILL, SIGTERM, power loss)
//   ks-kill, ks-restart, ks-power (the KS, back within seconds)
//   ks-away                       (the KS down for one to five minutes)
//   broker                        (broker restart: in-flight messages lost)
//   offline, partition            (a node, or several and the KS, cut off)
//   session                       (the broker forgets a session meanwhile)
//   clock                         (a machine's wall clock jumps)
const std::set<std::string>& AllFaultClasses();
// Operation classes (the --ops flag): authorize, request, renew, send,
// rotate (node-initiated NKSK rotation), ks-rotate (the KS asks for one),
// allow, withdraw, revoke (the profile "pairs"), and the group operations
// group-create, group-add, group-remove, group-batch, group-delete,
// group-send (the profile "groups", workload_groups.h).
const std::set<std::string>& PairOpClasses();
const std::set<std::string>& AllOpClasses();

struct RunConfig {
  uint64_t seed = 1;
  int nodes = 6;
  int steps = 300;
  std::set<std::string> faults;  // enabled classes
  std::set<std::string> ops = AllOpClasses();
  double fault_rate = 1.0;  // scales how often faults happen
  uint64_t heal_ms = 600'000;
  std::set<std::string> invariants;  // checked (empty: all)
  // Checks the checker: "log" or "wire" leaks the first node's NTAG there
  // at step 10 (hex in a log line, raw in a published message).
  std::string plant;
  WorldOptions world;
};

struct RunResult {
  bool ok = true;
  std::string invariant, detail;
  int steps = 0;
  uint64_t sim_ms = 0;
  std::map<std::string, uint64_t> coverage;
  NetStats net;
};

// Runs one seed on the calling thread. `trace` receives the events.
RunResult RunSeed(const RunConfig& config, Trace& trace);

}  // namespace kgr::sim

#endif  // KGR_TESTS_SIM_WORKLOAD_H_
