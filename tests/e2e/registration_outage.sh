#!/usr/bin/env bash
# Nodes that start while the KS is down (issue 19, failure 1) register once
# it is back, without a restart:
#   A. alpha's daemon starts with the KS down; its first requests' deadline
#      passes; the KS comes back and answers the requests the broker kept
#      for it: alpha takes the late answer. bravo's one-shot `kgr-node
#      register` with the KS down ends with a clear error, and succeeds after
#      the KS came back.
#   B. charlie's daemon starts with the KS down and the broker restarts
#      meanwhile (the queued requests are lost): the daemon keeps asking and
#      registers once the KS is back.
# Then the nodes pair and exchange data.
set -euo pipefail
src=${KGR_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
export TSS2_LOG=all+none KED_TRACE=1
source "$src/tests/e2e/ked.bash"

registered() {
  [[ $(node "$1" status --json 2>/dev/null) == *'"registered": true'* ]]
}
# wait_for SECONDS WHAT CMD...: polls CMD until it succeeds, at most SECONDS.
wait_for() {
  local secs=$1 what=$2 end=$((SECONDS + $1)); shift 2
  while ((SECONDS < end)); do "$@" && return 0; sleep 0.2; done
  die "$what (waited ${secs} s)"
}
ks_stop() { kill -TERM "$KS_PID"; wait "$KS_PID" 2>/dev/null || true; }
no_answer_logged() { grep -q "no answer from the key server" "$KED_DIR/logs/$1.log"; }
asked_again() {  # asked_again NAME N: the daemon logged N repeated requests
  (($(grep -c "not registered yet: no answer" "$KED_DIR/logs/$1.log" || true) >= $2))
}

ked_init
ked_broker_up
ked_ks_up
export KED_NO_START=1
ked_node_add alpha
ked_node_add bravo alpha
ked_node_add charlie alpha
unset KED_NO_START

# A. The KS is down when alpha's daemon starts.
ks_stop
NODE_ARGS[alpha]="--timeout-ms 2000"
started=$SECONDS
node_start alpha
wait_for 30 "alpha logged no missing answer" no_answer_logged alpha
# ...and its first request's deadline (2 s) has passed.
wait_for 10 "clock" eval '((SECONDS >= started + 3))'
registered alpha && die "alpha registered with the KS down"
set +e
node bravo register --timeout-ms 2000 >"$KED_DIR/register.out" 2>&1
rc=$?
set -e
[[ $rc == 3 ]] && grep -q "DEADLINE_EXCEEDED: no answer from the key server" "$KED_DIR/register.out" ||
  die "kgr-node register with the KS down: exit $rc, $(cat "$KED_DIR/register.out")"
say "ok: KS down: alpha's first requests timed out; bravo's register failed clearly (exit 3)"
ks_start
wait_for 90 "alpha did not register after the KS came back" registered alpha
node bravo register >"$KED_DIR/register.out" 2>&1 ||
  die "kgr-node register after the KS came back: $(cat "$KED_DIR/register.out")"
say "ok: the KS came back: alpha's daemon registered without a restart, bravo's register succeeded"

# B. The KS is down and the broker loses what was queued for it.
ks_stop
NODE_ARGS[charlie]="--timeout-ms 2000"
node_start charlie
wait_for 60 "charlie did not keep asking" asked_again charlie 5
kill -TERM "$BROKER_PID"; wait "$BROKER_PID" 2>/dev/null || true
broker_start
ks_start
wait_for 90 "charlie did not register after the KS came back" registered charlie
grep -q "not registered yet: no answer from the key server" "$KED_DIR/logs/charlie.log" ||
  die "charlie's daemon did not log its repeated requests"
say "ok: KS down and the broker's queue lost: charlie's daemon kept asking and registered"

# The nodes work: keys and data both ways.
node_start bravo
for n in bravo charlie; do
  node_peers "$n" alpha >/dev/null
  node_peers alpha "$n" >/dev/null
  node "$n" request-key --peer "${NODE_ID[alpha]}" >/dev/null || die "request-key $n -> alpha"
  node "$n" send --peer "${NODE_ID[alpha]}" --data "hello" | grep -q "ack 5 bytes" ||
    die "data $n -> alpha"
  node alpha send --peer "${NODE_ID[$n]}" --data "hi" | grep -q "ack 2 bytes" ||
    die "data alpha -> $n"
done
say "ok: the late-registered nodes pair and exchange data both ways"
echo "registration_outage: OK"
