#!/usr/bin/env bash
# SIGHUP reloads the config of a running kgr-ks and kgr-node: what can
# change at runtime takes effect (the KS's log level and limits, the
# node's key lifetime policy), a restart-only setting is named and left
# alone, and a bad config is refused with one error line while the daemon
# keeps serving with the settings it had.
set -euo pipefail
src=${KGR_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
export TSS2_LOG=all+none KED_TRACE=1
source "$src/tests/e2e/ked.bash"

ked_init
ks_conf=$KED_DIR/ks.json node_conf=$KED_DIR/node.json
echo '{"log_level": "info", "max_pending": 100000}' >"$ks_conf"
echo '{"log_level": "info", "policy": {"max_frames": 0}}' >"$node_conf"
export KS_EXTRA_ARGS="--config $ks_conf" NODE_EXTRA_ARGS="--config $node_conf"
ked_broker_up
ked_ks_up
ked_pair alpha bravo

log_count() { grep -c -- "$2" "$KED_DIR/logs/$1.log" || true; }
# hup NAME PID PATTERN: SIGHUP, then wait until one more line of NAME's log
# matches PATTERN.
hup() {
  local before
  before=$(log_count "$1" "$3")
  kill -HUP "$2"
  for _ in $(seq 100); do
    (($(log_count "$1" "$3") > before)) && return 0
    kill -0 "$2" 2>/dev/null || die "$1 exited on SIGHUP"
    sleep 0.05
  done
  tail -5 "$KED_DIR/logs/$1.log" >&2
  die "$1: no \"$3\" after SIGHUP"
}
key_once() { node alpha renew --peer "${NODE_ID[bravo]}" >/dev/null || die "renew alpha -> bravo"; }

# KS: the log level. At info a key leaves no debug line; after the reload
# to debug it does.
key_once
[[ $(ks_log_count "confirmed and forgotten") == 0 ]] || die "debug lines at log_level info"
echo '{"log_level": "debug", "max_pending": 5000}' >"$ks_conf"
hup ks "$KS_PID" "ks: reloaded: log_level=debug .*max_pending=5000"
key_once
[[ $(ks_log_count "confirmed and forgotten") -ge 1 ]] || die "no debug line after reload to debug"
say "ks: SIGHUP reloaded log_level=debug and max_pending=5000 (debug lines appear)"

# KS: a restart-only setting is named, not applied.
echo '{"log_level": "debug", "max_pending": 5000, "topic_prefix": "other"}' >"$ks_conf"
hup ks "$KS_PID" "need a restart (not applied): topic_prefix"
key_once
say "ks: topic_prefix named as restart-only; keys still flow on the old prefix"

# KS: bad configs are refused with one line each; the daemon keeps serving.
bad_reload() {  # bad_reload NAME PID CONFIG_FILE CONTENT EXPECTED
  local before_err
  before_err=$(log_count "$1" "reload refused")
  printf '%s\n' "$4" >"$3"
  hup "$1" "$2" "reload refused, the running settings stay: .*$5"
  (($(log_count "$1" "reload refused") == before_err + 1)) || die "$1: more than one refusal line"
}
bad_reload ks "$KS_PID" "$ks_conf" '{"max_pending": "many"}' 'config key "max_pending"'
bad_reload ks "$KS_PID" "$ks_conf" '{"log_level": "debug",' 'not a JSON object'
bad_reload ks "$KS_PID" "$ks_conf" '{"no_such_key": 1}' 'no_such_key'
bad_reload ks "$KS_PID" "$ks_conf" '' 'not a JSON object'
rm -f "$ks_conf"
hup ks "$KS_PID" "reload refused, the running settings stay: .*cannot read config file $ks_conf"
key_once
# shellcheck disable=SC2046
"$KS_BIN" status $(ks_args) --json >/dev/null || die "kgr-ks status after refused reloads"
# The settings it had stay: still debug.
before=$(ks_log_count "confirmed and forgotten")
key_once
(($(ks_log_count "confirmed and forgotten") > before)) || die "the log level changed on a refused reload"
say "ks: bad configs refused with one line each; serving with the settings it had"

# Node: the key lifetime policy. With at most 4 frames per key, the
# reloaded daemon renews the pair's key by itself.
version() {
  node "$1" status --json | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["pairs"][0]["key_version"])'
}
pid=${NODE_PID[alpha]}
bad_reload alpha "$pid" "$node_conf" '{"policy": {"max_frames": -1}}' 'policy.max_frames'
echo '{"log_level": "info", "policy": {"max_frames": 4}}' >"$node_conf"
hup alpha "$pid" "node: reloaded: .*policy.max_frames=4"
v0=$(version alpha)
for i in $(seq 1 12); do
  node alpha send --peer "${NODE_ID[bravo]}" --data "frame $i" | grep -q ack || die "frame $i not answered"
  sleep 0.1
done
v1=$(version alpha)
((v1 > v0)) || die "no renewal after the reload to max_frames=4 (version $v0 -> $v1)"
say "node: SIGHUP reloaded policy.max_frames=4: key version $v0 -> $v1 by itself; a bad policy refused"
echo "reload: OK"
