#!/usr/bin/env bash
# kgr-ks's per-node rate limit from its flags, with the real daemons: with
# 1 frame/s and a burst of 3, back-to-back key requests of one node go over
# the limit; the KS drops the excess before any crypto (counted in
# `kgr-ks status`), the node's retransmissions get through, and every
# request completes. Settings that make no sense are refused (exit 2), by
# kgr-ks and kgr-node; a node's --journal-prealloc-kb sets the preallocation
# of its ses_keys journal.
set -euo pipefail
src=${KGR_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
export TSS2_LOG=all+none KED_TRACE=1
source "$src/tests/e2e/ked.bash"

ked_init
for bad in "--node-frames-per-s 5 --node-burst 0" "--max-pending 0" \
           "--node-frames-per-s x"; do
  set +e
  # shellcheck disable=SC2086
  out=$("$KS_BIN" run --state-dir "$KED_DIR/unused" $bad 2>&1); rc=$?
  set -e
  [[ $rc == 2 ]] || die "kgr-ks run $bad: expected exit 2, got $rc: $out"
done
say "ok: a zero burst with a rate, zero max_pending and a non-number are usage errors"
for bad in "--timeout-ms 12abc" "--key-max-frames -1" "--journal-prealloc-kb 4097"; do
  set +e
  # shellcheck disable=SC2086
  out=$("$NODE_BIN" status --state-dir "$KED_DIR/unused" $bad 2>&1); rc=$?
  set -e
  [[ $rc == 2 ]] || die "kgr-node status $bad: expected exit 2, got $rc: $out"
done
echo '{"policy": {"pairs": {"00000001": {"max_frames": -1}}}}' >"$KED_DIR/bad-policy.json"
set +e
out=$("$NODE_BIN" status --state-dir "$KED_DIR/unused" --config "$KED_DIR/bad-policy.json" 2>&1); rc=$?
set -e
[[ $rc == 2 ]] || die "kgr-node with a negative per-pair limit: expected exit 2, got $rc: $out"
say "ok: kgr-node refuses a number with trailing junk, a negative one (flag or per-pair config) and too much preallocation"

ked_broker_up
KS_EXTRA_ARGS="--node-frames-per-s 1 --node-burst 3" ked_ks_up
NODE_ARGS[alpha]="--journal-prealloc-kb 0"  # bravo keeps the default
ked_pair alpha bravo
rate_limited() {
  "$KS_BIN" status $(ks_args) --json |
    /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["since_start"]["rate_limited"])'
}
before=$(rate_limited)
for i in 1 2 3 4; do
  node alpha renew --peer "${NODE_ID[bravo]}" --timeout-ms 20000 >/dev/null ||
    die "renewal $i under the rate limit"
done
after=$(rate_limited)
((after > before)) || die "no frame was rate limited ($before -> $after)"
node alpha send --peer "${NODE_ID[bravo]}" --data "limited" | grep -q "ack 7 bytes" ||
  die "data after the renewals"
say "ok: 4 back-to-back renewals at 1 frame/s (burst 3): $((after - before)) frames dropped by the KS, every renewal completed by retransmission"
size_of() { stat -c %s "$KED_DIR/node-$1/ses_keys.log"; }
(($(size_of alpha) < 65536)) || die "alpha's journal is preallocated: $(size_of alpha) bytes"
(($(size_of bravo) >= 262144)) || die "bravo's journal is not preallocated: $(size_of bravo) bytes"
say "ok: ses_keys journal $(size_of alpha) bytes with --journal-prealloc-kb 0, $(size_of bravo) with the default"
echo "limits: OK"
