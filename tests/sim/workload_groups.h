// The group operations of a simulation run (--ops group-*, the profile
// "groups"; docs/simulation.md, "Groups"): the AC creates, changes and
// deletes groups, several joins and leaves land within one batch window,
// members publish group messages. Everything random comes from the run's
// PRNG.
#ifndef KGR_TESTS_SIM_WORKLOAD_GROUPS_H_
#define KGR_TESTS_SIM_WORKLOAD_GROUPS_H_

#include <set>
#include <string>
#include <vector>

#include "rng.h"
#include "world.h"

namespace kgr::sim {

// group-create, group-add, group-remove, group-batch, group-delete,
// group-send.
const std::set<std::string>& GroupOpClasses();

class GroupOps {
 public:
  GroupOps(World& w, Rng& rng) : w_(w), rng_(rng) {}
  void Create();
  void Add();
  void Remove();
  // 2-4 adds and removes of one group, a few ms apart (the KS batches the
  // joins into one rekey; removals rekey at once).
  void Batch();
  void Delete();
  void Send();

 private:
  int LiveGroup();  // an index in w_.groups() not deleted, or -1
  int Candidate(const SimGroup& g, bool member);  // a node index or -1
  void Change(int gi, bool add);
  void Ac(const std::string& op, const Status& st);

  World& w_;
  Rng& rng_;
};

}  // namespace kgr::sim

#endif  // KGR_TESTS_SIM_WORKLOAD_GROUPS_H_
