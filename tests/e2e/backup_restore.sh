#!/usr/bin/env bash
# Issue 23, the recovery drill of docs/operations.md with the real
# executables: a KS with continuous backups serves a pair; a node is
# authorized and registers after the first backup; the KS machine dies
# (SIGKILL; its state directory and its TPM are thrown away); a new KS on a
# new swtpm is restored from the newest backup with the offline recovery
# key; the running node daemons, never touched, renew their pair keys and
# exchange data, and the late node is served too. Also: an on-demand backup
# of the running daemon, a recovery key made by OpenSSL, and a restore with
# the wrong key, onto a used TPM or into a used state directory refused with
# one line and nothing left behind.
set -euo pipefail
src=${KGR_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
export TSS2_LOG=all+none KED_TRACE=1
source "$src/tests/e2e/ked.bash"

ked_init
ked_broker_up
keys=$KED_DIR/recovery
mkdir -p "$keys"
"$KS_BIN" recovery-key --out-private "$keys/recovery.key" \
  --out-public "$keys/recovery.pub" >/dev/null || die "recovery-key failed"
[[ $(stat -c %a "$keys/recovery.key") == 600 ]] || die "recovery.key is not 0600"
"$KS_BIN" recovery-key --out-private "$keys/recovery.key" \
  --out-public "$keys/other.pub" >/dev/null 2>"$KED_DIR/overwrite.err" &&
  die "recovery-key overwrote an existing key"
openssl genpkey -algorithm X25519 -out "$keys/openssl.key" 2>/dev/null
openssl pkey -in "$keys/openssl.key" -pubout -out "$keys/openssl.pub" 2>/dev/null

# A backup directory without a recovery key is a config error: exit 2, one
# line naming the setting, nothing created.
rc=0
"$KS_BIN" run --state-dir "$KED_DIR/nothing" --backup-dir "$KED_DIR/nothing-bk" \
  >/dev/null 2>"$KED_DIR/cfg.err" || rc=$?
[[ $rc == 2 && $(wc -l <"$KED_DIR/cfg.err") == 1 ]] && grep -q -- "backup-dir" "$KED_DIR/cfg.err" ||
  die "backup dir without a recovery key: rc=$rc, $(cat "$KED_DIR/cfg.err")"
[[ ! -e $KED_DIR/nothing && ! -e $KED_DIR/nothing-bk ]] || die "a refused config created files"

backups=$KED_DIR/backups
KS_EXTRA_ARGS="--backup-dir $backups --backup-recovery-public $keys/recovery.pub --backup-interval-s 1"
ked_ks_up
ked_pair alpha bravo
count_backups() { find "$backups" -name 'kgr-ks-*.kgrbak' | wc -l; }
wait_for() { for _ in $(seq 300); do "$@" && return 0; sleep 0.1; done; return 1; }
newest() { find "$backups" -name 'kgr-ks-*.kgrbak' | sort | tail -1; }
[[ $(count_backups) -ge 1 ]] || die "no backup after the start"
say "continuous backups: $(count_backups) after the pair registered"

# On demand, from the running daemon, to a key made by OpenSSL.
ks_cmd() { "$KS_BIN" "$1" --state-dir "$KED_DIR/ks" --tcti "${NODE_TCTI[ks]}" "${@:2}"; }
ks_cmd backup --backup-recovery-public "$keys/openssl.pub" --out "$KED_DIR/ondemand.kgrbak" |
  grep -q "nodes" || die "on-demand backup failed"

# A node authorized and registered after the first backups: the daemon
# writes a new backup (interval 1 s) and says when none is pending.
ked_node_add charlie alpha
wait_registered charlie
node_peers alpha charlie >/dev/null
node_peers charlie alpha >/dev/null
up_to_date() { ks_cmd status --json | grep -q '"pending_changes": 0'; }
wait_for up_to_date || die "the backup after charlie's registration is still pending"
say "continuous backups: $(count_backups), none pending after charlie registered"
node alpha send --peer "${NODE_ID[bravo]}" --data "before" | grep -q "ack 6 bytes" ||
  die "data before the loss"

# The KS machine dies: process, state directory and TPM are gone.
kill -KILL "$KS_PID"
pkill -KILL -f "tpmstate dir=$KED_DIR/tpm-ks" || true
rm -rf "$KED_DIR/ks" "$KED_DIR/tpm-ks"
say "ks: killed; its state directory and swtpm state are gone"
backup=$(newest)

# A new machine: a new swtpm (name ks again, new state), restored.
swtpm_up ks
restore() { "$KS_BIN" restore --state-dir "$KED_DIR/ks" --tcti "${NODE_TCTI[ks]}" "$@"; }
restore --backup "$backup" --recovery-key "$keys/openssl.key" 2>"$KED_DIR/wrong.err" &&
  die "restore with the wrong recovery key succeeded"
[[ $(wc -l <"$KED_DIR/wrong.err") == 1 ]] && grep -q "verification failed" "$KED_DIR/wrong.err" ||
  die "wrong key: expected one 'verification failed' line, got: $(cat "$KED_DIR/wrong.err")"
[[ ! -e $KED_DIR/ks/node_desc ]] || die "a failed restore left node_desc behind"
out=$(restore --backup "$backup" --recovery-key "$keys/recovery.key") ||
  die "restore failed: $out"
say "restore: $out"
grep -q "restored key server" <<<"$out" || die "restore printed: $out"
restore --backup "$backup" --recovery-key "$keys/recovery.key" 2>"$KED_DIR/again.err" &&
  die "a second restore onto the same TPM succeeded"
say "restore again: $(cat "$KED_DIR/again.err")"
KS_EXTRA_ARGS=""
ks_start

# The node daemons were never touched: renewals and data work again.
for pair in "alpha bravo" "alpha charlie"; do
  set -- $pair
  # The first attempt may meet the daemon's back-off towards the KS.
  renewed=0
  for _ in 1 2 3; do
    if node "$1" renew --peer "${NODE_ID[$2]}" --timeout-ms 10000 >/dev/null 2>>"$KED_DIR/logs/renew.err"; then
      renewed=1; break
    fi
  done
  ((renewed)) || die "$1 could not renew with $2 after the restore: $(tail -3 "$KED_DIR/logs/renew.err")"
  node "$1" send --peer "${NODE_ID[$2]}" --data "after" | grep -q "ack 5 bytes" ||
    die "no data $1 -> $2 after the restore"
  say "after the restore: $1 renewed with $2 and sent data"
done
node bravo send --peer "${NODE_ID[alpha]}" --data "back" | grep -q "ack 4 bytes" ||
  die "no data bravo -> alpha after the restore"

# The on-demand backup (OpenSSL's key) restores too, on yet another TPM.
swtpm_up spare
"$KS_BIN" restore --state-dir "$KED_DIR/spare" --tcti "${NODE_TCTI[spare]}" \
  --backup "$KED_DIR/ondemand.kgrbak" --recovery-key "$keys/openssl.key" |
  grep -q "restored key server" || die "the on-demand backup did not restore"
echo "backup_restore: OK"
