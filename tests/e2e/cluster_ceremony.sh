#!/usr/bin/env bash
# Issue 23: the membership ceremony and the recovery drill of a KS cluster
# on etcd, over the real executables (docs/cluster.md "Membership
# ceremony", docs/operations.md "Recovery drill of a cluster on etcd"):
# two instances join through `kgr-ks cluster init / join / approve`
# (cluster.bash); a pair renews; instance 1 is removed online (`cluster
# remove`, a domain-key rotation while instance 0 serves) and stops
# writing; bad input is refused with one line. Then the drill: a backup of
# the etcd state, etcd's state lost, a restore onto a new swtpm into the
# empty prefix, and the untouched node daemons renew and exchange data
# with their existing credentials.
set -euo pipefail
src=${KGR_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
export TSS2_LOG=all+none KED_TRACE=1
source "$src/tests/e2e/ked.bash"
source "$src/tests/e2e/cluster.bash"
command -v etcd >/dev/null || { echo "cluster_ceremony: no etcd (etcd-server), skipped"; exit 77; }

ked_init
ked_broker_up
etcd_up
ked_cluster_up 2
ked_pair alpha bravo

# shellcheck disable=SC2046
kc() { "$KS_BIN" cluster "$1" $(ksi_args "$2") --state "$ETCD_URL" --instance "$2" "${@:3}"; }
cstatus() { kc status 0 --json; }
field() { /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }
renew_ok() {  # renew_ok A B: one renewal completes (retries allowed)
  for _ in $(seq 10); do
    node "$1" renew --peer "${NODE_ID[$2]}" --timeout-ms 5000 >/dev/null 2>&1 && return 0
    sleep 0.3
  done
  return 1
}
send_ok() { node "$1" send --peer "${NODE_ID[$2]}" --data "$3" --timeout-ms 5000 2>/dev/null | grep -q "ack ${#3} bytes"; }

[[ $(cstatus | field generation) == 1 ]] || die "generation after init: $(cstatus)"
[[ $(cstatus | /usr/bin/python3 -c 'import json,sys; print(len(json.load(sys.stdin)["members"]))') == 2 ]] ||
  die "two members expected: $(cstatus)"
renew_ok alpha bravo || die "no renewal with two members"

# Bad input: one line, nothing changed.
one_line() {  # one_line WHAT PATTERN CMD...: fails with one line matching
  local what=$1 pat=$2 rc=0
  shift 2
  "$@" >/dev/null 2>"$KED_DIR/bad.err" || rc=$?
  [[ $rc != 0 && $(wc -l <"$KED_DIR/bad.err") == 1 ]] && grep -q -- "$pat" "$KED_DIR/bad.err" ||
    die "$what: rc=$rc, $(cat "$KED_DIR/bad.err")"
}
one_line "approve of an unknown fingerprint" "no join request" kc approve 0 --fingerprint 0000-1111
one_line "removal of a lane that is no member" "not a member" kc remove 0 --lane 9 --settle-ms 0
one_line "cluster without etcd" "needs --state" "$KS_BIN" cluster status --state-dir "$KED_DIR/ks0"
one_line "unknown subcommand" "frobnicate" kc frobnicate 0
[[ $(cstatus | field generation) == 1 ]] || die "bad input changed the cluster"

# Instance 1 is removed while instance 0 serves: the rotation is online.
out=$(kc remove 0 --lane 1 --settle-ms 500) || die "cluster remove failed: $out"
say "remove: $out"
grep -q "generation 2 in force" <<<"$out" || die "remove printed: $out"
[[ $(cstatus | field generation) == 2 && $(cstatus | field rotating) == False ]] ||
  die "after the removal: $(cstatus)"
for _ in $(seq 50); do grep -q "writes stopped" "$KED_DIR/logs/ks1.log" && break; sleep 0.1; done
grep -q "writes stopped" "$KED_DIR/logs/ks1.log" || die "the removed instance kept writing"
ksi_kill 1  # the operator stops the removed machine
ksi_forget 1  # and ends its broker session (else it keeps a share of the frames)
renew_ok alpha bravo || die "no renewal after the rotation"
send_ok alpha bravo "after rotation" || die "no data after the rotation"
say "rotation: instance 1 removed, generation 2, the pair renews"

# The recovery drill: backup of the etcd state (through instance 0's daemon).
mkdir -p "$KED_DIR/drill"
# shellcheck disable=SC2046
"$KS_BIN" backup $(ksi_args 0) --state "$ETCD_URL" --instance 0 \
  --backup-recovery-public "$KED_DIR/recovery/pub" --out "$KED_DIR/drill/cluster.kgrbak" |
  grep -q "2 nodes" || die "backup of the etcd state failed"
ksi_kill 0
for pid in $(pgrep -f "tpmstate dir=$KED_DIR/tpm-ks0 " || true); do kill -KILL "$pid"; done
rm -rf "$KED_DIR/ks0" "$KED_DIR/tpm-ks0"
b64() { printf '%s' "$1" | base64 -w0; }
curl -sf -X POST "http://127.0.0.1:${ETCD_CLIENT[0]}/v3/kv/deleterange" \
  -d "{\"key\":\"$(b64 /kgr/ked/)\",\"range_end\":\"$(b64 /kgr/ked0)\"}" >/dev/null ||
  die "could not empty etcd"
say "drill: instance 0, its swtpm and etcd's state are gone"

swtpm_up ks0
# shellcheck disable=SC2046
out=$("$KS_BIN" restore $(ksi_args 0) --state "$ETCD_URL" --instance 0 \
  --backup "$KED_DIR/drill/cluster.kgrbak" --recovery-key "$KED_DIR/recovery/key") ||
  die "restore into etcd failed: $out"
say "restore: $out"
# A second restore into the (now used) prefix is refused with one line.
swtpm_up spare
one_line "restore into a used prefix" "holds a KS state" "$KS_BIN" restore \
  --state-dir "$KED_DIR/spare" --tcti "${NODE_TCTI[spare]}" --state "$ETCD_URL" \
  --backup "$KED_DIR/drill/cluster.kgrbak" --recovery-key "$KED_DIR/recovery/key"
[[ ! -e $KED_DIR/spare/member_key ]] || die "a refused restore left a member key"
ksi_start 0
[[ $(cstatus | field generation) == 1 ]] || die "the restored cluster: $(cstatus)"
renew_ok alpha bravo || die "alpha could not renew after the restore into etcd"
send_ok alpha bravo "after restore" || die "no data alpha -> bravo after the restore"
send_ok bravo alpha "back" || die "no data bravo -> alpha after the restore"
echo "cluster_ceremony: OK"
