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
node charlie peers --file <(echo "${NODE_ID[bravo]}") >/dev/null
node bravo peers --file <(printf '%s\n%s\n' "${NODE_ID[alpha]}" "${NODE_ID[charlie]}") >/dev/null
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
node bravo send --peer "${NODE_ID[charlie]}" --data "others unaffected" | grep -q "ack 17 bytes" ||
  die "bravo-charlie broken by alpha's revocation"

# 2. Withdraw the pair bravo-charlie.
ac peers --node "${NODE_ID[bravo]}" --peers "${NODE_ID[charlie]}" --withdraw >/dev/null 2>>"$KED_DIR/logs/ac.log"
sleep 0.5
[[ -z $(pairs charlie) ]] || die "charlie still holds the pair's key"
[[ $(pairs bravo) != *"${NODE_ID[charlie]}"* ]] || die "bravo still holds the pair's key"
set +e
out=$(node charlie request-key --peer "${NODE_ID[bravo]}" 2>&1); rc=$?
set -e
[[ $rc == 4 ]] || die "withdrawn pair: expected a refusal (4), got $rc: $out"
say "ok: pair bravo-charlie withdrawn: both wiped it, a new key is refused (exit 4)"
echo "revoke: OK"
