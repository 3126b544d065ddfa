#!/usr/bin/env bash
# Revocation with the real executables: the AC revokes a node (its peers
# wipe their pair, the KS refuses it) and withdraws a pair (both nodes wipe
# it, the KS refuses new keys for it).
set -euo pipefail
src=${KGR_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
export TSS2_LOG=all+none KED_TRACE=1
source "$src/tests/e2e/ked.bash"

ked_init
ked_broker_up
ked_ks_up
ked_pair alpha bravo
ked_node_add charlie bravo
wait_registered charlie
node_peers charlie bravo >/dev/null
node_peers bravo alpha charlie >/dev/null
node bravo request-key --peer "${NODE_ID[charlie]}" >/dev/null
pairs() {  # pairs NAME: the peers NAME holds a key with
  node "$1" status --json | /usr/bin/python3 -c 'import json,sys; print(" ".join(p["peer"] for p in json.load(sys.stdin)["pairs"] if p["has_key"]))'
}
[[ $(pairs bravo) == *"${NODE_ID[alpha]}"* ]] || die "bravo has no key with alpha"

# 1. Revoke alpha.
out=$(ac revoke --node "${NODE_ID[alpha]}" 2>>"$KED_DIR/logs/ac.log") || die "revoke failed"
[[ $out == *"1 peer(s) told"* ]] || die "revoke: $out"
sleep 0.5
[[ $(pairs bravo) != *"${NODE_ID[alpha]}"* ]] || die "bravo still holds a key with alpha"
set +e
node alpha send --peer "${NODE_ID[bravo]}" --data "hello?" --timeout-ms 2000 >/dev/null 2>&1; rc_send=$?
node alpha renew --peer "${NODE_ID[bravo]}" --timeout-ms 2000 >/dev/null 2>&1; rc_renew=$?
set -e
[[ $rc_send == 3 ]] || die "revoked alpha's data was answered (exit $rc_send)"
[[ $rc_renew == 3 ]] || die "revoked alpha got a key (exit $rc_renew)"
state=$(ac list --json 2>/dev/null | /usr/bin/python3 -c "import json,sys; print([n['state'] for n in json.load(sys.stdin) if n['n_id'] == '${NODE_ID[alpha]}'][0])")
[[ $state == revoked ]] || die "list shows alpha as '$state'"
say "ok: alpha revoked: bravo wiped the pair, alpha's data and key requests are refused, list shows it"
# The broker refuses alpha's identity once it re-reads the CRL.
[[ $out == *"added to"* ]] || die "revoke did not update the CRL: $out"
kill -HUP "$BROKER_PID"; sleep 0.5
cn="n${NODE_ID[alpha]}"
rc=$(ked_try_connect "$cn" "$KED_DIR/node-alpha/tls/cert.pem" "$KED_DIR/node-alpha/tls/key.pem")
[[ $rc != 27 && $rc != 0 ]] || die "the broker still accepts the revoked identity (rc $rc)"
rc=$(ked_try_connect "n${NODE_ID[bravo]}" "$KED_DIR/node-bravo/tls/cert.pem" "$KED_DIR/node-bravo/tls/key.pem")
[[ $rc == 27 ]] || die "the broker refuses a valid identity after the CRL update (rc $rc)"
say "ok: after SIGHUP the broker refuses alpha's certificate (others still connect)"
node bravo send --peer "${NODE_ID[charlie]}" --data "others unaffected" | grep -q "ack 17 bytes" ||
  die "bravo-charlie broken by alpha's revocation"

# 2. Withdraw the pair bravo-charlie. `--out` writes bravo's peer list as
# the KS has it, before (allowing again changes nothing) and after.
ac peers --node "${NODE_ID[bravo]}" --peers "${NODE_ID[charlie]}" \
  --out "$KED_DIR/bravo-before.peers" >/dev/null 2>>"$KED_DIR/logs/ac.log"
grep -qx "peer ${NODE_ID[charlie]}" "$KED_DIR/bravo-before.peers" ||
  die "bravo's peer list lacks charlie: $(cat "$KED_DIR/bravo-before.peers")"
ac peers --node "${NODE_ID[bravo]}" --peers "${NODE_ID[charlie]}" --withdraw \
  --out "$KED_DIR/bravo-after.peers" >/dev/null 2>>"$KED_DIR/logs/ac.log"
! grep -qx "peer ${NODE_ID[charlie]}" "$KED_DIR/bravo-after.peers" ||
  die "bravo's peer list still has charlie: $(cat "$KED_DIR/bravo-after.peers")"
head -1 "$KED_DIR/bravo-after.peers" | grep -q "^# kgr peer list" || die "not a peer list file"
sleep 0.5
[[ -z $(pairs charlie) ]] || die "charlie still holds the pair's key"
[[ $(pairs bravo) != *"${NODE_ID[charlie]}"* ]] || die "bravo still holds the pair's key"
set +e
out=$(node charlie request-key --peer "${NODE_ID[bravo]}" 2>&1); rc=$?
set -e
[[ $rc == 4 ]] || die "withdrawn pair: expected a refusal (4), got $rc: $out"
say "ok: pair bravo-charlie withdrawn: both wiped it, a new key is refused (exit 4), ac peers --out wrote bravo's list before and after"
echo "revoke: OK"
