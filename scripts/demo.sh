#!/usr/bin/env bash
# The kgr demo: on one machine, a whole Key Exchange Domain on loopback.
# Sets up a fresh Debian 12 machine (as root), builds, then: makes a CA,
# starts a TLS Mosquitto and one swtpm per party, starts the KS, provisions
# three nodes through the AC, registers them, establishes session keys for
# two pairs, exchanges data, renews a key, exchanges data again, and stops
# everything it started. Ends with "demo: OK ..." or exits non-zero.
# KGR_SKIP_SETUP=1 skips the setup and build; KGR_BIN_DIR=/usr/bin runs it
# against the installed packages' kgr-ks, kgr-ac and kgr-node.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ ${KGR_SKIP_SETUP:-0} != 1 ]]; then
  bash scripts/install-deps.sh
  BUILD_DIR=build bash scripts/build.sh -DCMAKE_BUILD_TYPE=RelWithDebInfo
fi
export KGR_BINARY_DIR=${KGR_BINARY_DIR:-$PWD/build}
export TSS2_LOG=all+none
source tests/e2e/ked.bash

keys=0 renewals=0 frames=0
ked_init
ked_broker_up
ked_ks_up
ked_node_add alpha
ked_node_add bravo alpha
ked_node_add charlie bravo
for n in alpha bravo charlie; do
  wait_registered "$n"
  say "node $n: registered with the KS (NKSK/NKSKsign in its TPM)"
done

# The AC hands each node its peer list (seed 4.6).
for n in alpha bravo charlie; do
  ac peers --node "${NODE_ID[$n]}" --peers "$(
    case $n in alpha) echo "${NODE_ID[bravo]}" ;; bravo) echo "${NODE_ID[alpha]},${NODE_ID[charlie]}" ;;
               charlie) echo "${NODE_ID[bravo]}" ;; esac)" \
    --out "$KED_DIR/$n.peers" >/dev/null 2>>"$KED_DIR/logs/ac.log"
  node "$n" peers --file "$KED_DIR/$n.peers" >/dev/null
  say "node $n: peer list loaded ($(grep -c '^peer ' "$KED_DIR/$n.peers") peer(s))"
done

key() {  # key FROM TO [renew]
  local cmd=request-key
  [[ ${3:-} == renew ]] && cmd=renew
  node "$1" "$cmd" --peer "${NODE_ID[$2]}" >/dev/null ||
    die "$cmd $1 -> $2 failed"
  say "session key $1 <-> $2: ${3:-new} key delivered to both, confirmed, forgotten by the KS"
}
send() {  # send FROM TO TEXT
  local out
  out=$(node "$1" send --peer "${NODE_ID[$2]}" --data "$3") || die "send $1 -> $2 failed"
  frames=$((frames + 2))
  say "data $1 -> $2: \"$3\" ($out)"
}

key alpha bravo; keys=$((keys + 1))
key bravo charlie; keys=$((keys + 1))
send alpha bravo "hello bravo!"
send bravo charlie "hello charlie"
send charlie bravo "hi back"
key alpha bravo renew; renewals=$((renewals + 1))
send alpha bravo "after renew"
send bravo alpha "also after"

# The example application: a sensor on alpha sends 5 readings to a
# collector on bravo, through the daemons' application API (docs/api.md).
/usr/bin/python3 "$KGR_SRC/examples/collector.py" --socket "$KED_DIR/node-bravo/app.sock" \
  --count 5 >"$KED_DIR/collector.out" 2>&1 &
collector=$!
for _ in $(seq 50); do grep -q listening "$KED_DIR/collector.out" && break; sleep 0.1; done
/usr/bin/python3 "$KGR_SRC/examples/sensor.py" --socket "$KED_DIR/node-alpha/app.sock" \
  --collector "${NODE_ID[bravo]}" --interval 0.2 --count 5 >/dev/null ||
  die "the example sensor failed"
wait "$collector" || die "the example collector failed"
grep '^reading' "$KED_DIR/collector.out" | sed 's/^/app: /' | while read -r l; do say "$l"; done
[[ $(grep -c '^reading' "$KED_DIR/collector.out") == 5 ]] || die "the collector missed readings"

# Refusal: charlie may not pair with alpha.
if node charlie request-key --peer "${NODE_ID[alpha]}" >/dev/null 2>&1; then
  die "charlie got a key for a pair the AC did not allow"
fi
say "refused as it should be: charlie -> alpha (pair not allowed)"

pending=$("$KS_BIN" status $(ks_args) --json | /usr/bin/python3 -c 'import json,sys; print(len(json.load(sys.stdin)["pending_keys"]))')
[[ $pending == 0 ]] || die "the KS still holds $pending key(s)"
say "ks: gen_keys is empty: every key was confirmed and forgotten"
for n in alpha bravo charlie; do say "$(node "$n" status | head -1)"; done
ked_down
trap - EXIT
echo "demo: OK nodes=3 keys=$keys renewals=$renewals data_frames=$frames"
