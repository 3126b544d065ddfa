#!/usr/bin/env bash
# A captured AC request replayed after the KS restarted changes nothing: the
# KS keeps its AC replay floor on disk, written before it acts on a request.
# Here: the AC allows the pair alpha-bravo, then withdraws it; the allow
# request, captured on the broker, is published again after a KS restart
# (SIGTERM) and after a KS crash (SIGKILL); the pair stays withdrawn.
set -euo pipefail
src=${KGR_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
export TSS2_LOG=all+none KED_TRACE=1 KED_OBSERVER=1
source "$src/tests/e2e/ked.bash"

ked_init
ked_broker_up
ked_ks_up
ked_node_add alpha
ked_node_add bravo
ked_observe 'kgr/ks/ac'
sleep 0.5

a=${NODE_ID[alpha]} b=${NODE_ID[bravo]}
allowed() {  # allowed: does the KS list bravo among alpha's peers?
  ac list 2>>"$KED_DIR/logs/ac.log" | grep "^ *$a" | grep -q "$b"
}
wait_for() { for _ in $(seq 100); do "$@" && return 0; sleep 0.1; done; return 1; }

before=$(wc -l <"$KED_DIR/observed")
ac peers --node "$a" --peers "$b" >/dev/null 2>>"$KED_DIR/logs/ac.log" || die "allow failed"
wait_for bash -c "[[ \$(wc -l <'$KED_DIR/observed') -gt $before ]]" || die "the allow request was not observed"
sleep 0.5
# Every AC request of `kgr-ac peers` (it may ask more than one thing).
tail -n +$((before + 1)) "$KED_DIR/observed" >"$KED_DIR/allow.requests"
allowed || die "the pair is not allowed after kgr-ac peers"
ac peers --node "$a" --peers "$b" --withdraw >/dev/null 2>>"$KED_DIR/logs/ac.log" ||
  die "withdraw failed"
allowed && die "the pair is still allowed after the withdrawal"
say "ac: allowed alpha-bravo, then withdrew it; $(wc -l <"$KED_DIR/allow.requests") AC requests of the allow captured"

replay() {
  local topic hex
  while read -r topic hex; do
    printf '%s' "$hex" | xxd -r -p >"$KED_DIR/allow.bin"
    mqtt_as n00000000 mosquitto_pub -q 1 -t "$topic" -f "$KED_DIR/allow.bin"
  done <"$KED_DIR/allow.requests"
  sleep 1
}
replay
allowed && die "the replayed allow request was accepted (same KS run)"
for sig in TERM KILL; do
  kill "-$sig" "$KS_PID"
  wait "$KS_PID" 2>/dev/null || true
  ks_start
  replay
  allowed && die "the replayed allow request was accepted after a KS restart (SIG$sig)"
  say "ok: after SIG$sig and a restart, the replayed allow request changed nothing"
done
# The AC still works after the restarts (its counter is above the floor).
ac peers --node "$a" --peers "$b" >/dev/null 2>>"$KED_DIR/logs/ac.log" || die "allow after restarts failed"
allowed || die "a fresh allow request after the restarts was not applied"
echo "ac_replay: OK"
