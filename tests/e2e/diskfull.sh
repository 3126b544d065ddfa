#!/usr/bin/env bash
# A real full disk under the KS: its state directory on a small tmpfs that
# is filled up. A key request then fails at once with a clear error, the
# previous files stay intact, and once there is room again keys flow.
# Needs root to mount a tmpfs; skipped (exit 77) where mounting is refused.
set -euo pipefail
src=${KGR_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
export TSS2_LOG=all+none KED_TRACE=1
source "$src/tests/e2e/ked.bash"

ked_init
mkdir -p "$KED_DIR/ks"
if ! mount -t tmpfs -o size=512k,mode=0700 kgr-test "$KED_DIR/ks" 2>/dev/null; then
  echo "diskfull: cannot mount a tmpfs here; skipped"
  exit 77
fi
cleanup() { ked_down_keep_mount; }
ked_down_keep_mount() {
  local keep=${KED_DIR:-}
  KED_KEEP=1 ked_down
  umount "$keep/ks" 2>/dev/null || true
  [[ ${KED_KEEP:-0} == 1 ]] || rm -rf "$keep"
}
trap cleanup EXIT
ked_broker_up
# 8 KiB of preallocated journal space (256 KiB by default): a few renewals
# fit in it on the full disk, then the journal must grow and cannot.
KS_EXTRA_ARGS="--journal-prealloc-kb 8" ked_ks_up
ked_pair alpha bravo

# Fill the disk.
dd if=/dev/zero of="$KED_DIR/ks/filler" bs=4k >/dev/null 2>&1 || true
df -k "$KED_DIR/ks" | tail -1 | awk '{ if ($4 > 8) exit 1 }' || die "tmpfs not full"
# The preallocated journal space takes the first renewals: renew until a
# write needs more room than the full disk has.
rc=0
fitted=0
for i in $(seq 60); do
  set +e
  out=$(node alpha renew --peer "${NODE_ID[bravo]}" --timeout-ms 5000 2>&1); rc=$?
  set -e
  [[ $rc == 0 ]] || break
  fitted=$((fitted + 1))
done
[[ $rc != 0 && $out == *"internal"* ]] || die "renew on a full disk: rc=$rc $out"
(( fitted >= 3 )) || die "only $fitted renewals went into the preallocated space"
grep -q "gen_keys not stored" "$KED_DIR/logs/ks.log" || die "KS did not log the failed write"
registered=$("$KS_BIN" status $(ks_args) --json | /usr/bin/python3 -c 'import json,sys; print(sum(n["state"] == "registered" for n in json.load(sys.stdin)["nodes"]))')
[[ $registered == 2 ]] || die "node_desc damaged: $registered registered nodes"
say "ok: disk full at the KS -> $fitted renewals in the preallocated journal space, then the request failed at once (exit $rc: ${out#*: }); node_desc intact"

# Room again: keys flow, and the KS still serves both nodes.
rm -f "$KED_DIR/ks/filler"
node alpha renew --peer "${NODE_ID[bravo]}" >/dev/null || die "renew after freeing space"
node bravo send --peer "${NODE_ID[alpha]}" --data "room again" | grep -q "ack 10 bytes" || die "data"
say "ok: space freed: renewal and data work again"
echo "diskfull: OK"
