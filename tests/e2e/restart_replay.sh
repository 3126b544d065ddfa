#!/usr/bin/env bash
# Issue 19, failure 5, with the real executables: a data frame captured on
# the broker and published again after the receiver restarted (SIGTERM, then
# SIGKILL) is refused, and the sender's usage counters (frames_sent,
# bytes_sent: what the lifetime policy limits) survive its restarts.
set -euo pipefail
src=${KGR_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
export TSS2_LOG=all+none KED_TRACE=1 KED_OBSERVER=1
source "$src/tests/e2e/ked.bash"

ked_init
ked_broker_up
ked_ks_up
# The observer (tests only: may read and write everything) records frames.
ked_observe 'kgr/#'
ked_pair alpha bravo

received() { grep -c "bytes of data from ${NODE_ID[alpha]}" "$KED_DIR/logs/bravo.log" || true; }

# wait_for CMD...: polls CMD until it succeeds (20 s).
wait_for() {
  for _ in $(seq 200); do "$@" && return 0; sleep 0.1; done
  return 1
}

# capture TEXT: alpha sends TEXT to bravo; prints the topic and hex of the
# node_data_req (type 0x10) the observer saw for it.
capture() {
  local before
  before=$(wc -l <"$KED_DIR/observed")
  node alpha send --peer "${NODE_ID[bravo]}" --data "$1" | grep -q "ack ${#1} bytes" ||
    die "send $1 failed"
  seen() { tail -n +$((before + 1)) "$KED_DIR/observed" |
    grep -m1 "^kgr/n${NODE_ID[bravo]}/[a-z2-7]* 0110"; }
  wait_for seen >/dev/null || die "the observer did not see the data frame"
  seen
}

# replay_after SIGNAL: bravo stops by SIGNAL right after a frame, starts
# again; the frame published again must not reach its data handler.
replay_after() {
  local sig=$1 line topic hex n
  line=$(capture "frame before $sig")
  topic=${line%% *}
  hex=${line#* }
  n=$(received)
  kill "-$sig" "${NODE_PID[bravo]}"
  wait "${NODE_PID[bravo]}" 2>/dev/null || true
  node_start bravo
  printf '%s' "$hex" | xxd -r -p >"$KED_DIR/frame.bin"
  mqtt_as n00000000 mosquitto_pub -q 1 -t "$topic" -f "$KED_DIR/frame.bin"
  # The pair still works, and the replayed frame was handled (or dropped)
  # before this one: bravo saw exactly one more frame.
  node alpha send --peer "${NODE_ID[bravo]}" --data "after $sig" --timeout-ms 20000 |
    grep -q "ack" || die "pair broken after $sig"
  [[ $(received) == $((n + 1)) ]] ||
    die "after $sig, bravo accepted a replayed data frame ($n -> $(received) frames)"
  say "ok: a data frame replayed after bravo's $sig restart was refused"
}

replay_after TERM
replay_after KILL

# Usage counters: alpha's frames_sent/bytes_sent survive its restarts.
usage() {  # prints "frames bytes" of alpha's pair with bravo
  node alpha status --json | /usr/bin/python3 -c '
import json, sys
p = [p for p in json.load(sys.stdin)["pairs"] if p["peer"] == sys.argv[1]][0]
print(p["frames_sent"], p["bytes_sent"])' "${NODE_ID[bravo]}"
}
read -r frames bytes < <(usage)
((frames >= 3)) || die "alpha counted $frames frames"
kill -TERM "${NODE_PID[alpha]}"; wait "${NODE_PID[alpha]}" 2>/dev/null || true
node_start alpha
read -r f2 b2 < <(usage)
[[ $f2 == "$frames" && $b2 == "$bytes" ]] ||
  die "usage after a clean restart: $frames frames $bytes bytes -> $f2 frames $b2 bytes"
node alpha send --peer "${NODE_ID[bravo]}" --data "12345" | grep -q "ack 5 bytes"
kill -KILL "${NODE_PID[alpha]}"; wait "${NODE_PID[alpha]}" 2>/dev/null || true
node_start alpha
read -r f3 b3 < <(usage)
((f3 >= frames + 1 && b3 >= bytes + 5)) ||
  die "usage went back after a kill: $((frames + 1)) frames $((bytes + 5)) bytes used, $f3 frames $b3 bytes read back"
say "ok: usage counters survive restarts ($frames/$bytes -> $f2/$b2 after SIGTERM, $f3/$b3 after SIGKILL)"
echo "restart_replay: OK"
