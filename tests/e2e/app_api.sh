#!/usr/bin/env bash
# The application API (docs/api.md) over a real TLS broker: two applications
# exchange APP_N (default 10000) messages each way through their daemons
# while the pair's key renews by policy every few seconds (none lost,
# duplicated or out of order: app_exchange.py); an application refused a
# peer it may not use (api.users); the withdrawal of the pair reaches a
# subscribed application. (A slow subscriber: tests/app_api_itest.cc.)
source "$(dirname "$0")/ked.bash"
export KGR_SRC
N=${APP_N:-10000}
PY=/usr/bin/python3
ked_init
ked_broker_up
ked_ks_up
# Keys renew at about 80% of 4 s; bravo's user may use alpha only, and
# queues at most 64 events per application.
NODE_EXTRA_ARGS="--key-max-age-s 4"
ked_node_add alpha
echo "{\"api\": {\"users\": {\"$(id -u)\": [\"${NODE_ID[alpha]}\"]}}}" >"$KED_DIR/bravo.json"
NODE_ARGS[bravo]="--config $KED_DIR/bravo.json --api-queue 64"
ked_node_add bravo alpha
wait_registered alpha
wait_registered bravo
node_peers alpha bravo >/dev/null
node_peers bravo alpha >/dev/null
A=$KED_DIR/node-alpha/app.sock B=$KED_DIR/node-bravo/app.sock
[[ -S $A && -S $B ]] || die "no application socket"
[[ $(stat -c %a "$A") == 600 ]] || die "app.sock is not mode 0600: $(stat -c %a "$A")"

# 1. The exchange, with renewals by policy (no key yet: the first send asks).
before=$(grep -c "renew" "$KED_DIR/logs/alpha.log" || true)
$PY "$KGR_SRC/tests/e2e/app_exchange.py" "$A" "$B" "$N" 50 || die "exchange failed"
versions=$(node alpha status --json | $PY -c 'import json,sys; print([p["key_version"] for p in json.load(sys.stdin)["pairs"]])')
say "ok: $N messages each way, none lost, duplicated or out of order; key versions now $versions"

# 2. Permission: bravo's user may not use another peer.
$PY - "$B" <<'PY' || die "permission"
import sys; sys.path.insert(0, __import__("os").environ["KGR_SRC"] + "/clients/python")
import kgr_app
app = kgr_app.connect(sys.argv[1])
for op in (lambda: app.send("0000abcd", b"x"), lambda: app.subscribe(["0000abcd"])):
    try:
        op(); sys.exit("not refused")
    except kgr_app.KgrError as e:
        assert e.code == "PERMISSION_DENIED", e
        print("refused:", e)
PY
say "ok: a peer not in api.users is refused (send and subscribe)"

# 3. Events: the AC withdraws the pair; alpha's subscribed application is
#    told (pair_withdrawn), and a send to bravo is refused afterwards.
$PY - "$A" "${NODE_ID[bravo]}" >"$KED_DIR/events.out" 2>&1 <<'PY' &
import sys; sys.path.insert(0, __import__("os").environ["KGR_SRC"] + "/clients/python")
import kgr_app
app = kgr_app.connect(sys.argv[1]); app.subscribe(); print("subscribed", flush=True)
while True:
    ev = app.next_event(timeout=30)
    if ev is None or ev["event"] in ("pair_withdrawn", "peer_revoked"):
        print("event:", ev, flush=True); break
PY
events=$!
for _ in $(seq 50); do grep -q subscribed "$KED_DIR/events.out" && break; sleep 0.1; done
ac peers --node "${NODE_ID[alpha]}" --peers "${NODE_ID[bravo]}" --withdraw >/dev/null 2>>"$KED_DIR/logs/ac.log" ||
  die "ac peers --withdraw failed"
wait "$events" || true
grep -q "event: {'event': 'pair_withdrawn', 'peer': '${NODE_ID[bravo]}'}" "$KED_DIR/events.out" ||
  die "no pair_withdrawn event: $(cat "$KED_DIR/events.out")"
say "ok: the pair's withdrawal reached the subscribed application (pair_withdrawn)"
