#!/usr/bin/env bash
# sd_notify with the real daemons, as systemd (Type=notify, WatchdogSec=)
# would see it: a datagram socket named by NOTIFY_SOCKET gets READY=1 once
# kgr-ks and kgr-node serve, WATCHDOG=1 at half of WATCHDOG_USEC from their
# event loops, RELOADING=1 then READY=1 on SIGHUP, STOPPING=1 on SIGTERM.
set -euo pipefail
src=${KGR_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
export TSS2_LOG=all+none KED_TRACE=1
source "$src/tests/e2e/ked.bash"

ked_init
# listen NAME: a notify socket $KED_DIR/NAME.sock whose datagrams become
# lines of $KED_DIR/NAME.notify (newlines as '|').
listen() {
  /usr/bin/python3 - "$KED_DIR/$1.sock" "$KED_DIR/$1.notify" <<'PY' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
with open(sys.argv[2], "a", buffering=1) as out:
    while True:
        out.write(s.recv(4096).decode().replace("\n", "|") + "\n")
PY
  KED_PIDS+=("$!")
  for _ in $(seq 100); do [[ -S $KED_DIR/$1.sock ]] && return 0; sleep 0.05; done
  die "notify listener $1 did not start"
}
count() { grep -c -- "$2" "$KED_DIR/$1.notify" 2>/dev/null || true; }
wait_for() {  # wait_for NAME PATTERN N: until N lines of NAME.notify match
  for _ in $(seq 100); do
    (($(count "$1" "$2") >= $3)) && return 0
    sleep 0.05
  done
  cat "$KED_DIR/$1.notify" >&2 || true
  die "$1: fewer than $3 \"$2\" notifications"
}

listen ks
listen alpha
ked_broker_up
export WATCHDOG_USEC=400000
NOTIFY_SOCKET=$KED_DIR/ks.sock ked_ks_up
wait_for ks '^READY=1|STATUS=serving, n_id ' 1
(($(count ks READY=1) == 1)) || die "more than one READY=1 at start"
say "ks: READY=1 once serving: $(grep -m1 READY "$KED_DIR/ks.notify")"

# The watchdog: a ping at least every 200 ms from the event loop.
w0=$(count ks WATCHDOG=1)
sleep 1
w1=$(count ks WATCHDOG=1)
((w1 - w0 >= 3)) || die "ks: $((w1 - w0)) WATCHDOG=1 in 1 s (expected about 5)"
# A stopped event loop stops them (what makes systemd restart it).
kill -STOP "$KS_PID"
w2=$(count ks WATCHDOG=1)
sleep 0.6
w3=$(count ks WATCHDOG=1)
kill -CONT "$KS_PID"
((w3 - w2 <= 1)) || die "ks: WATCHDOG=1 while the process was stopped"
wait_for ks WATCHDOG=1 $((w3 + 2))
say "ks: WATCHDOG=1 every ~200 ms ($((w1 - w0)) in 1 s), none while stopped"

kill -HUP "$KS_PID"
wait_for ks RELOADING=1 1
wait_for ks '^READY=1' 2
grep 'RELOADING=1\|READY=1' "$KED_DIR/ks.notify" | tail -2 | tr '\n' ' ' |
  grep -q '^RELOADING=1 READY=1|STATUS=serving' || die "ks: no READY=1 after RELOADING=1"
say "ks: SIGHUP: RELOADING=1 then READY=1"

NOTIFY_SOCKET=$KED_DIR/alpha.sock ked_node_add alpha
wait_for alpha '^READY=1|STATUS=serving, n_id ' 1
wait_for alpha WATCHDOG=1 3
say "node alpha: READY=1 and WATCHDOG=1"
# Without NOTIFY_SOCKET (not started by systemd): nothing is sent, it serves.
ked_node_add bravo alpha
wait_registered bravo

kill -TERM "$KS_PID"
wait "$KS_PID" 2>/dev/null || true
wait_for ks STOPPING=1 1
kill -TERM "${NODE_PID[alpha]}"
wait "${NODE_PID[alpha]}" 2>/dev/null || true
wait_for alpha STOPPING=1 1
say "ks, node: STOPPING=1 on SIGTERM"
echo "notify: OK"
