#!/usr/bin/env bash
# Issue 23: a KS cluster over the real executables (docs/cluster.md): a
# three-member etcd, TLS Mosquitto, three kgr-ks instances of one KS (each
# with its own swtpm, lane and broker session, the KS topics shared among
# them), nodes on their own swtpms. Nodes keep renewing their pairs' keys
# while one KS instance, and separately one etcd member, is SIGKILLed and
# restarted, round after round. Checked: every renewal completes (retries
# allowed), both ends of every pair then hold the same key version and data
# flows both ways (a request id that got two keys would break the pair), no
# node registers twice, and every instance did part of the work.
set -euo pipefail
src=${KGR_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
export TSS2_LOG=all+none KED_TRACE=1
source "$src/tests/e2e/ked.bash"
source "$src/tests/e2e/cluster.bash"
command -v etcd >/dev/null || { echo "cluster: no etcd (etcd-server), skipped"; exit 77; }
ROUNDS=${CLUSTER_ROUNDS:-6}

ked_init
ked_broker_up
etcd_up
ked_cluster_up 3
ked_pair alpha bravo
ked_pair charlie delta

version() {  # version NAME PEER_NAME
  node "$1" status --json | /usr/bin/python3 -c '
import json, sys
for p in json.load(sys.stdin)["pairs"]:
    if p["peer"] == sys.argv[1]: print(p["key_version"])' "${NODE_ID[$2]}"
}
send_ok() {  # send_ok FROM TO TEXT
  node "$1" send --peer "${NODE_ID[$2]}" --data "$3" --timeout-ms 5000 2>/dev/null |
    grep -q "ack ${#3} bytes"
}
renew_until_done() {  # renew_until_done A B: retries until one renewal completes
  for attempt in $(seq 20); do
    node "$1" renew --peer "${NODE_ID[$2]}" --timeout-ms 4000 >/dev/null 2>&1 && return 0
    say "  renewal $1 -> $2: attempt $attempt did not complete, again"
    sleep 0.3
  done
  die "renewal $1 -> $2 never completed"
}
check_pair() {  # check_pair A B: same version on both ends, data both ways
  local ok=0
  for _ in $(seq 30); do
    if send_ok "$1" "$2" "to $2" && send_ok "$2" "$1" "to $1"; then ok=1; break; fi
    sleep 0.3
  done
  [[ $ok == 1 ]] || die "pair $1/$2 broken: no data both ways"
  [[ $(version "$1" "$2") == "$(version "$2" "$1")" ]] ||
    die "pair $1/$2: versions differ ($(version "$1" "$2") vs $(version "$2" "$1"))"
}

renewals=0
declare -a work=(0 0 0)
for ((round = 0; round < ROUNDS; round++)); do
  ks=$((round % 3))
  member=$(((round + 1) % 3))
  say "round $round: SIGKILL kgr-ks instance $ks while renewing"
  node alpha renew --peer "${NODE_ID[bravo]}" --timeout-ms 4000 >/dev/null 2>&1 &
  bg=$!
  work[$ks]=$((work[$ks] + $(ksi_work "$ks")))
  ksi_kill "$ks"
  wait "$bg" || true
  renew_until_done charlie delta
  renew_until_done alpha bravo
  renewals=$((renewals + 2))
  ksi_start "$ks"
  check_pair alpha bravo
  check_pair charlie delta
  say "round $round: SIGKILL etcd member m$member while renewing"
  etcd_kill "$member"
  renew_until_done bravo alpha
  renew_until_done delta charlie
  renewals=$((renewals + 2))
  etcd_member_start "$member"
  wait_port "${ETCD_CLIENT[$member]}" || die "etcd m$member did not restart"
  check_pair alpha bravo
  check_pair charlie delta
  say "round $round: ok (pairs at v$(version alpha bravo) and v$(version charlie delta))"
done

for n in alpha bravo charlie delta; do
  c=$(grep -c "registered with key server" "$KED_DIR/logs/$n.log" || true)
  [[ $c == 1 ]] || die "node $n registered $c times"
done
say "ok: no node registered twice"
for ((i = 0; i < 3; i++)); do
  work[$i]=$((work[$i] + $(ksi_work "$i")))
  [[ ${work[$i]} -gt 0 ]] || die "KS instance $i issued or confirmed no key"
done
say "ok: keys issued or confirmed per instance: ${work[*]}"
echo "cluster: OK ($ROUNDS rounds, $renewals renewals completed, KS instances and etcd members killed)"
