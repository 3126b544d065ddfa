#!/usr/bin/env bash
# Issue 23: kgr-ks with its state on etcd (--state etcd://...). Two nodes
# register and get a key through one KS process; a second KS process (the
# first stopped) on the same etcd state serves them: a new key and a
# renewal, and neither node registers again: the record files of its
# state directory are removed before the second start.
set -euo pipefail
src=${KGR_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
export TSS2_LOG=all+none KED_TRACE=1
[[ -x /usr/bin/etcd ]] || { echo "SKIP: no /usr/bin/etcd"; exit 77; }
source "$src/tests/e2e/ked.bash"

ked_init
ked_etcd_up 1
export KS_EXTRA_ARGS="--state etcd://$ETCD_ENDPOINTS/kgr/e2e"
ked_broker_up
ked_ks_up
ked_pair alpha bravo
say "ok: registered and paired through the KS on etcd"

[[ -s $KED_DIR/ks/domain_key ]] || { ls -la "$KED_DIR/ks" >&2; grep -i "etcd\|state" "$KED_DIR/logs/ks.log" >&2; die "no domain key in the state directory"; }
n=$(etcd_count /kgr/e2e/node_desc/)
[[ $n == 2 ]] || die "etcd holds $n node_desc records, expected 2"
registrations=$(ks_log_count "registered")

kill -TERM "$KS_PID"
wait "$KS_PID" 2>/dev/null || true
# Whatever record files `kgr-ks init` left are not what serves: gone.
rm -f "$KED_DIR"/ks/node_desc* "$KED_DIR"/ks/gen_keys*
ks_start
say "ok: a second kgr-ks process on the same etcd state"

node alpha request-key --peer "${NODE_ID[bravo]}" --timeout-ms 20000 >/dev/null ||
  die "no new key through the second KS process"
node bravo renew --peer "${NODE_ID[alpha]}" --timeout-ms 20000 >/dev/null ||
  die "no renewal through the second KS process"
node bravo send --peer "${NODE_ID[alpha]}" --data "after the restart" --timeout-ms 20000 |
  grep -q ack || die "the pair does not carry data"
[[ $(ks_log_count "registered") == "$registrations" ]] ||
  die "a node registered again"
say "ok: the second KS served a new key and a renewal; nobody registered again"

# Groups live in one instance's files: a KS on etcd refuses them, with the
# reason, and keeps nothing (docs/cluster.md).
if out=$(ac group create --name room --members "${NODE_ID[alpha]},${NODE_ID[bravo]}" 2>&1); then
  die "a KS on etcd created a group: $out"
fi
grep -q "serves no groups yet" <<<"$out" || die "group refusal without its reason: $out"
say "ok: a KS on etcd refuses groups with the reason"
