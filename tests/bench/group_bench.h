// kgr-bench --groups: the cost of rekeying a group with the logical key
// hierarchy (libkgr/group/) against a naive unicast rekey, in the same run.
#ifndef KGR_TESTS_BENCH_GROUP_BENCH_H_
#define KGR_TESTS_BENCH_GROUP_BENCH_H_

namespace kgr::bench {

// Runs the group benchmark with kgr-bench's argv (which holds --groups);
// prints one JSON object on stdout. Returns the exit code.
int RunGroupBench(int argc, char** argv);

}  // namespace kgr::bench

#endif  // KGR_TESTS_BENCH_GROUP_BENCH_H_
