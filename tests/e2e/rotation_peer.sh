#!/usr/bin/env bash
# Right after an NKSK rotation the node is fully usable in both roles (issue
# 19, failure 4): the other node renews the pair's key with it at once (the
# rotated node is the peer: it must take the KS's nnsk_not_req), then the
# rotated node renews (requester), and data flows both ways. Rotation asked
# by the node, by the KS, and one followed by a restart of the node before
# it sent anything under the new NKSK.
set -euo pipefail
src=${KGR_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
export TSS2_LOG=all+none KED_TRACE=1
source "$src/tests/e2e/ked.bash"

nv() { node "$1" status --json | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["nv_writes"])'; }
# both_roles ROTATED OTHER WHAT
both_roles() {
  local r=$1 o=$2 what=$3
  node "$o" renew --peer "${NODE_ID[$r]}" >"$KED_DIR/renew.out" 2>&1 ||
    die "$what: $o could not renew with $r (the peer): $(cat "$KED_DIR/renew.out")"
  node "$o" send --peer "${NODE_ID[$r]}" --data "to $r" | grep -q "ack" || die "$what: data $o -> $r"
  node "$r" send --peer "${NODE_ID[$o]}" --data "to $o" | grep -q "ack" || die "$what: data $r -> $o"
  node "$r" renew --peer "${NODE_ID[$o]}" >"$KED_DIR/renew.out" 2>&1 ||
    die "$what: $r could not renew with $o: $(cat "$KED_DIR/renew.out")"
  node "$o" send --peer "${NODE_ID[$r]}" --data "again" | grep -q "ack" || die "$what: data $o -> $r"
}

ked_init
ked_broker_up
ked_ks_up
ked_pair alpha bravo

# 1. alpha rotates; bravo renews with it right away.
n0=$(nv alpha)
node alpha rotate >/dev/null || die "kgr-node rotate"
[[ $(nv alpha) == $((n0 + 1)) ]] || die "rotation: expected one NV write"
both_roles alpha bravo "after kgr-node rotate"
say "ok: alpha rotated its NKSK; right away a peer (bravo renewed with it) and a requester"

# 2. The KS asks bravo to rotate; alpha renews with bravo right away.
b0=$(nv bravo)
# shellcheck disable=SC2046
"$KS_BIN" rotate --node "${NODE_ID[bravo]}" $(ks_args) >/dev/null || die "kgr-ks rotate"
for _ in $(seq 100); do [[ $(nv bravo) == $((b0 + 1)) ]] && break; sleep 0.1; done
[[ $(nv bravo) == $((b0 + 1)) ]] || die "KS-asked rotation did not happen"
both_roles bravo alpha "after kgr-ks rotate"
say "ok: the KS had bravo rotate; bravo is right away a peer and a requester"

# 3. alpha rotates and restarts before it sent anything under the new NKSK.
node alpha rotate >/dev/null || die "kgr-node rotate (2)"
kill -TERM "${NODE_PID[alpha]}"; wait "${NODE_PID[alpha]}" 2>/dev/null || true
node_start alpha
both_roles alpha bravo "after a rotation and a restart"
say "ok: alpha rotated and restarted at once; still a peer and a requester"
grep -q "verification failed" "$KED_DIR/logs/alpha.log" "$KED_DIR/logs/bravo.log" &&
  die "a node dropped a KS frame it could not verify"
echo "rotation_peer: OK"
