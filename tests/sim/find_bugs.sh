#!/usr/bin/env bash
# The simulation finding the known bugs of issue 19 on a main that still has
# them (docs/simulation.md): each run stops at the first seed that violates
# the invariant and prints it with its replay command. Exits non-zero if one
# is not found within its seeds, which is what a main with the fixes should
# do: then this script has served its purpose (sim_seeds covers the rest).
set -euo pipefail
sim=${1:?usage: find_bugs.sh path/to/kgr-sim}
status=0
run() {
  local what=$1; shift
  echo "== $what: kgr-sim $*"
  if ! "$sim" --traces 0 "$@" | tail -n 1; then
    echo "== $what: NOT FOUND"
    status=1
  fi
}
# 1. A node whose registration gave up while the KS was away is never
#    registered afterwards.
run "bug 1 (registration)" --seed 1 --seeds 200 \
  --invariants every_node_registers --expect every_node_registers
# 2. A renewal that fails while the peer is away breaks the pair.
run "bug 2 (failed renewal)" --seed 1 --seeds 50 --faults offline \
  --ops authorize,request,renew,send,allow \
  --invariants pairs_converge --expect pairs_converge
# 3. A late retransmission of nnsk_key_req gets a second key.
run "bug 3 (second key)" --seed 1 --seeds 50 \
  --invariants one_key_per_request --expect one_key_per_request
exit $status
