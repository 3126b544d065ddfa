#!/usr/bin/env bash
# Issue 19, failure 2, with the real executables: a renewal while the peer
# is away (SIGSTOP, ~3 s) fails, and changes nothing: data keeps flowing
# both ways under the old key without an operator; once the peer is back,
# the next renewal succeeds and both nodes report the same key version.
set -euo pipefail
src=${KGR_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
export TSS2_LOG=all+none KED_TRACE=1
source "$src/tests/e2e/ked.bash"

ked_init
ked_broker_up
ked_ks_up
ked_pair alpha bravo
version() {  # version NAME PEER_NAME: the pair key version NAME reports
  node "$1" status --json | /usr/bin/python3 -c '
import json, sys
peer = sys.argv[1]
for p in json.load(sys.stdin)["pairs"]:
    if p["peer"] == peer: print(p["key_version"])' "${NODE_ID[$2]}"
}
send_ok() {  # send_ok FROM TO TEXT
  node "$1" send --peer "${NODE_ID[$2]}" --data "$3" | grep -q "ack ${#3} bytes"
}
v1=$(version alpha bravo)
[[ $v1 == "$(version bravo alpha)" ]] || die "versions differ after the first key"

# 1. bravo is away for ~3 s while alpha renews: the renewal fails.
kill -STOP "${NODE_PID[bravo]}"
set +e
out=$(node alpha renew --peer "${NODE_ID[bravo]}" --timeout-ms 2000 2>&1); rc=$?
set -e
sleep 1
kill -CONT "${NODE_PID[bravo]}"
[[ $rc != 0 ]] || die "the renewal succeeded while the peer was stopped"
say "ok: renewal with the peer away failed (rc=$rc): ${out#*: }"

# 2. bravo handles the held notification when it is back; data flows both
#    ways under the old key, without an operator.
for _ in $(seq 50); do
  send_ok alpha bravo "after the failed renewal" && break
  sleep 0.2
done
send_ok alpha bravo "alpha to bravo" || die "alpha -> bravo after the failed renewal"
send_ok bravo alpha "bravo to alpha" || die "bravo -> alpha after the failed renewal"
[[ $(version alpha bravo) == "$v1" ]] || die "alpha left the working key"
say "ok: data flows both ways under key v$v1 after the failed renewal"

# 3. The next renewal succeeds; after a frame each way both use the new key.
node alpha renew --peer "${NODE_ID[bravo]}" >/dev/null || die "the next renewal failed"
send_ok alpha bravo "new key" || die "alpha -> bravo after the renewal"
send_ok bravo alpha "new key" || die "bravo -> alpha after the renewal"
va=$(version alpha bravo)
vb=$(version bravo alpha)
[[ $va == "$vb" && $va -gt $v1 ]] || die "no common new key: alpha v$va, bravo v$vb"
say "ok: both nodes on key v$va"
echo "renewal_peer_away: OK"
