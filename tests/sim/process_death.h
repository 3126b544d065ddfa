// What stopping a simulated process does (shared by world.cc and
// world_cluster.cc): its trace and coverage names, and what a kill or a
// power loss does to its files.
#ifndef KGR_TESTS_SIM_PROCESS_DEATH_H_
#define KGR_TESTS_SIM_PROCESS_DEATH_H_

#include "rng.h"
#include "testing/fake_filesystem.h"
#include "world.h"

namespace kgr::sim {

inline constexpr char kKsDir[] = "/var/lib/kgr/ks";

// How a stop reads in the trace, and its coverage counter.
struct StopNames {
  const char* note;
  const char* counter;
};
inline StopNames NamesOf(Stop how) {
  switch (how) {
    case Stop::kClean:
      return {"clean stop", "restart"};
    case Stop::kKill:
      return {"kill", "kill"};
    case Stop::kPowerLoss:
      return {"power loss", "power_loss"};
  }
  return {"?", "?"};
}

// What a process's death does to its files: a kill loses what it held in
// memory (the stores' unsynced records are never written), a power loss
// also what the file system had not made durable.
inline void DieOn(testing::FakeFileSystem& fs, Stop how) {
  if (how == Stop::kClean) return;
  fs.FailAfterMutations(0);  // nothing more reaches the files
}

inline void AfterDeath(testing::FakeFileSystem& fs, Stop how, Rng& rng) {
  if (how == Stop::kClean) return;
  fs.ClearFaults();
  if (how == Stop::kPowerLoss) {
    testing::FakeFileSystem::CrashOptions o;
    if (rng.Chance(0.5)) o.random_seed = static_cast<uint32_t>(rng.Next());
    o.garble_kept = rng.Chance(0.2);
    o.keep_dir_changes = rng.Chance(0.5);
    fs.Crash(o);
  }
}

}  // namespace kgr::sim

#endif  // KGR_TESTS_SIM_PROCESS_DEATH_H_
