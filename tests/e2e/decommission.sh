#!/usr/bin/env bash
# Decommissioning with the real executables: `kgr-node wipe` and `kgr-ks
# wipe` erase what kgr made in the TPM and the state directory after
# confirmation, so that init works again on the same TPM; the wiped node's
# old state directory (a copy) opens nothing any more.
set -euo pipefail
src=${KGR_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
export TSS2_LOG=all+none KED_TRACE=1
source "$src/tests/e2e/ked.bash"

ked_init
ked_broker_up
ked_ks_up
ked_node_add alpha
wait_registered alpha
dir=$KED_DIR/node-alpha
tcti=${NODE_TCTI[alpha]}
tpm_handles() {  # NV indices and persistent handles of alpha's swtpm
  TPM2TOOLS_TCTI=$tcti tpm2_getcap handles-nv-index
  TPM2TOOLS_TCTI=$tcti tpm2_getcap handles-persistent
}

# A second credential file for the same device (what re-provisioning uses).
ac authorize --out "$KED_DIR/again.cred" >"$KED_DIR/again.out" 2>>"$KED_DIR/logs/ac.log" ||
  die "kgr-ac authorize failed"
again_id=$(grep -o 'node [0-9a-f]\{8\}' "$KED_DIR/again.out" | cut -d' ' -f2)

# 1. Refusals: while the daemon runs; without a terminal and without --yes;
#    a wrong typed answer. Nothing is erased by any of them.
set +e
node alpha wipe --yes >"$KED_DIR/w1" 2>&1; rc_running=$?
set -e
[[ $rc_running != 0 ]] || die "wipe ran while the daemon held the state directory"
kill -TERM "${NODE_PID[alpha]}"; wait "${NODE_PID[alpha]}" 2>/dev/null || true
set +e
node alpha wipe </dev/null >"$KED_DIR/w2" 2>&1; rc_notty=$?
printf 'no\n' | script -qec "$NODE_BIN wipe --state-dir $dir --tcti $tcti" /dev/null >"$KED_DIR/w3" 2>&1
rc_wrong=$?
node alpha init --credentials "$KED_DIR/again.cred" >"$KED_DIR/i1" 2>&1; rc_init=$?
set -e
[[ $rc_notty == 2 ]] && grep -q "needs --yes" "$KED_DIR/w2" ||
  die "wipe without a terminal and --yes: exit $rc_notty: $(cat "$KED_DIR/w2")"
grep -q 'Type "wipe"' "$KED_DIR/w3" && grep -q "not confirmed; nothing was erased" "$KED_DIR/w3" &&
  [[ $rc_wrong != 0 ]] || die "a wrong answer to the prompt: exit $rc_wrong: $(cat "$KED_DIR/w3")"
[[ $rc_init != 0 ]] && grep -q "already holds the identity" "$KED_DIR/i1" ||
  die "init with another node's credentials on a TPM holding alpha: exit $rc_init: $(cat "$KED_DIR/i1")"
handles=$(tpm_handles)
[[ -f $dir/nv-auth ]] && grep -qi 0x1004b00 <<<"$handles" || die "a refused wipe erased something: $handles"
say "ok: wipe refused while the daemon runs, without a terminal or --yes, and on a wrong answer; init of another identity refused before the wipe"

# 2. The old state, as someone who copied the disk keeps it.
cp -a "$dir" "$KED_DIR/old-alpha"
rm -f "$KED_DIR/old-alpha/lock" "$KED_DIR/old-alpha/control.sock"

# 3. Wipe, answering the prompt on a terminal.
printf 'wipe\n' | script -qec "$NODE_BIN wipe --state-dir $dir --tcti $tcti" /dev/null >"$KED_DIR/w4" 2>&1 ||
  die "wipe failed: $(cat "$KED_DIR/w4")"
grep -q "wiped: kgr's NV indices and keys erased" "$KED_DIR/w4" || die "wipe said: $(cat "$KED_DIR/w4")"
[[ ! -e $dir ]] || die "the state directory is still there: $(ls -A "$dir")"
handles=$(tpm_handles)
! grep -qi '0x1004b0' <<<"$handles" || die "NV indices left: $handles"
! grep -qi '0x81020001' <<<"$handles" || die "the ANK is left: $handles"
say "ok: wipe erased alpha's NV indices, ANK and state directory"

set +e
"$NODE_BIN" status --state-dir "$KED_DIR/old-alpha" --tcti "$tcti" >"$KED_DIR/o1" 2>&1; rc_old1=$?
set -e
[[ $rc_old1 != 0 ]] && grep -q "no identity in the TPM" "$KED_DIR/o1" ||
  die "the old state after the wipe: exit $rc_old1: $(cat "$KED_DIR/o1")"

# 4. Provisioned again on the same TPM: init succeeds, the new node registers.
node alpha init --credentials "$KED_DIR/again.cred" >>"$KED_DIR/logs/alpha.log" 2>&1 ||
  { tail -3 "$KED_DIR/logs/alpha.log" >&2; die "init after the wipe failed"; }
NODE_ID[alpha]=$again_id
node_start alpha
wait_registered alpha
say "ok: init after the wipe succeeded; the device registered as $again_id"

# The old copy does not open the new indices (another authValue).
kill -TERM "${NODE_PID[alpha]}"; wait "${NODE_PID[alpha]}" 2>/dev/null || true
set +e
"$NODE_BIN" status --state-dir "$KED_DIR/old-alpha" --tcti "$tcti" >"$KED_DIR/o2" 2>&1; rc_old2=$?
set -e
[[ $rc_old2 != 0 ]] && grep -q "authorization failure" "$KED_DIR/o2" ||
  die "the old state on the re-provisioned node: exit $rc_old2: $(cat "$KED_DIR/o2")"
say "ok: the wiped node's old state directory opens nothing (exit $rc_old1, then $rc_old2)"

# 5. The Key Server: wipe, then init makes a new KS identity.
old_ks=$(grep -o 'n_id=[0-9a-f]*' "$KED_DIR/logs/ks.log" | head -1)
kill -TERM "$KS_PID"; wait "$KS_PID" 2>/dev/null || true
# shellcheck disable=SC2046
"$KS_BIN" wipe --yes $(ks_args) >"$KED_DIR/w5" 2>&1 || die "kgr-ks wipe: $(cat "$KED_DIR/w5")"
[[ ! -e $KED_DIR/ks/node_desc ]] || die "kgr-ks wipe left node_desc"
# shellcheck disable=SC2046
"$KS_BIN" init $(ks_args) >"$KED_DIR/i2" 2>&1 || die "kgr-ks init after wipe: $(cat "$KED_DIR/i2")"
new_ks=$(grep -o 'n_id=[0-9a-f]*' "$KED_DIR/i2")
[[ $new_ks != "$old_ks" ]] || die "the KS kept its identity ($new_ks)"
say "ok: kgr-ks wipe, then init: $old_ks is gone, the KS is now $new_ks"
echo "PASS decommission"
