#!/usr/bin/env bash
# The refusals of the seed, with the real executables over a real TLS
# Mosquitto and swtpm: unknown node, wrong NTAG, reused NTAG, pair not
# allowed, tampered and replayed packets. Also: nothing secret crosses the
# broker in clear, and a node identity cannot read other identities' topics.
set -euo pipefail
src=${KGR_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
export TSS2_LOG=all+none KED_TRACE=1 KED_OBSERVER=1
source "$src/tests/e2e/ked.bash"

ked_init
ked_broker_up
ked_ks_up
# An observer sees every frame (hex) from now on.
ked_observe 'kgr/#'
ked_node_add alpha
ked_node_add bravo alpha
ked_node_add charlie
for n in alpha bravo charlie; do wait_registered "$n"; done
node_peers alpha bravo >/dev/null
node_peers bravo alpha >/dev/null
node_peers charlie alpha >/dev/null

# 1. Pair not allowed: exit code 4 and a clear message.
set +e
out=$(node charlie request-key --peer "${NODE_ID[alpha]}" 2>&1); rc=$?
set -e
[[ $rc == 4 && $out == *"pair not allowed"* ]] || die "pair not allowed: rc=$rc $out"
say "ok: pair not allowed refused (exit 4: $out)"

# A good key and data for the checks below.
node alpha request-key --peer "${NODE_ID[bravo]}" >/dev/null
node alpha send --peer "${NODE_ID[bravo]}" --data "plaintext-canary-0123" | grep -q "ack 21 bytes"

# 2. Reused NTAG: a second device with alpha's credentials cannot register.
ac authorize --out "$KED_DIR/delta.cred" >/dev/null 2>>"$KED_DIR/logs/ac.log"
delta_ntag=$(awk '$1=="ntag"{print $2}' "$KED_DIR/delta.cred")
delta_id=$(awk '$1=="n_id"{print $2}' "$KED_DIR/delta.cred")
swtpm_up delta
NODE_TCTI[delta2]=${NODE_TCTI[delta]}
swtpm_up delta_clone
node delta init --credentials "$KED_DIR/delta.cred" >/dev/null 2>&1
node delta register --timeout-ms 4000 >/dev/null 2>&1 || die "delta did not register"
before=$(ks_log_count "NTAG already used\|TOPIC2 changed")
node delta_clone init --credentials "$KED_DIR/delta.cred" >/dev/null 2>&1
set +e; node delta_clone register --timeout-ms 3000 >/dev/null 2>&1; rc=$?; set -e
[[ $rc == 3 ]] || die "reused NTAG: expected a timeout (3), got $rc"
[[ $(ks_log_count "NTAG already used\|TOPIC2 changed") -gt $before ]] || die "KS did not log the reused NTAG"
say "ok: reused NTAG ignored by the KS (logged), requester timed out (exit 3)"

# 3. Wrong NTAG: a credential file with one NTAG bit flipped (re-signed
#    with the AC's key: kgr-node init refuses any file the AC did not sign).
ac authorize --out "$KED_DIR/echo.cred" >/dev/null 2>>"$KED_DIR/logs/ac.log"
good=$(awk '$1=="ntag"{print $2}' "$KED_DIR/echo.cred")
bad=$(printf '%s' "$good" | sed 's/^./f/'); [[ $bad != "$good" ]] || bad=$(printf '%s' "$good" | sed 's/^./0/')
sed -i "s/^ntag .*/ntag $bad/" "$KED_DIR/echo.cred"
ac_sign "$KED_DIR/echo.cred"
swtpm_up echo
node echo init --credentials "$KED_DIR/echo.cred" >/dev/null 2>&1
before=$(ks_log_count "verification failed")
set +e; node echo register --timeout-ms 3000 >/dev/null 2>&1; rc=$?; set -e
[[ $rc == 3 ]] || die "wrong NTAG: expected a timeout (3), got $rc"
[[ $(ks_log_count "verification failed") -gt $before ]] || die "KS did not log the bad NTAG"
say "ok: wrong NTAG ignored by the KS (logged), requester timed out (exit 3)"

# 4. Unknown node: an N_ID the KS never authorized (valid broker cert).
sed -e "s/^n_id .*/n_id 0badc0de/" -e "s/^ntag .*/ntag $good/" "$KED_DIR/echo.cred" >"$KED_DIR/unknown.cred"
bash "$src/provisioning/issue-cert.sh" "$KED_DIR/pki" n0badc0de >/dev/null
cert_hex=$(od -An -v -tx1 "$KED_DIR/pki/n0badc0de.crt" | tr -d ' \n')
key_hex=$(od -An -v -tx1 "$KED_DIR/pki/n0badc0de.key" | tr -d ' \n')
sed -i -e "s/^cert_pem .*/cert_pem $cert_hex/" -e "s/^key_pem .*/key_pem $key_hex/" "$KED_DIR/unknown.cred"
ac_sign "$KED_DIR/unknown.cred"
swtpm_up unknown
node unknown init --credentials "$KED_DIR/unknown.cred" >/dev/null 2>&1
before=$(ks_log_count "unknown N_ID")
set +e; node unknown register --timeout-ms 3000 >/dev/null 2>&1; rc=$?; set -e
[[ $rc == 3 ]] || die "unknown node: expected a timeout (3), got $rc"
[[ $(ks_log_count "unknown N_ID") -gt $before ]] || die "KS did not log the unknown N_ID"
say "ok: unknown N_ID ignored by the KS (logged)"

# 5. Tampered and replayed frames: every frame the observer saw, sent again
#    as captured and with one bit flipped, changes nothing.
sleep 0.3
status_before=$("$KS_BIN" status $(ks_args) --json | /usr/bin/python3 -c 'import json,sys; j=json.load(sys.stdin); print(len(j["pending_keys"]), j["since_start"]["keys_issued"], j["since_start"]["registrations"])')
dropped_before=$(ks_log_count "dropped")
n=0
while read -r topic hex; do
  [[ $topic == kgr/* && -n $hex ]] || continue
  printf '%s' "$hex" | xxd -r -p >"$KED_DIR/frame.bin"
  mqtt_as n00000000 mosquitto_pub -q 1 -t "$topic" -f "$KED_DIR/frame.bin"
  /usr/bin/python3 -c 'import sys; b=bytearray(open(sys.argv[1],"rb").read()); b[len(b)//2]^=4; open(sys.argv[1],"wb").write(b)' "$KED_DIR/frame.bin"
  mqtt_as n00000000 mosquitto_pub -q 1 -t "$topic" -f "$KED_DIR/frame.bin"
  n=$((n + 1))
done < <(grep -v '^kgr/ks/ac\|^kgr/ac/' "$KED_DIR/observed")
sleep 1
status_after=$("$KS_BIN" status $(ks_args) --json | /usr/bin/python3 -c 'import json,sys; j=json.load(sys.stdin); print(len(j["pending_keys"]), j["since_start"]["keys_issued"], j["since_start"]["registrations"])')
[[ $status_before == "$status_after" ]] || die "replayed/tampered frames changed the KS: $status_before -> $status_after"
[[ $(ks_log_count "dropped") -gt $dropped_before ]] || die "KS logged no drops"
node alpha send --peer "${NODE_ID[bravo]}" --data "still fine" | grep -q "ack 10 bytes" || die "pair broken after replays"
say "ok: $n captured frames replayed and bit-flipped: all dropped, no state changed"

# 6. Nothing secret in clear on the broker: no NTAG, no plaintext.
for secret in "$delta_ntag" "$good" "$(printf 'plaintext-canary-0123' | od -An -v -tx1 | tr -d ' \n')"; do
  if grep -qi "$secret" "$KED_DIR/observed"; then die "a secret crossed the broker in clear"; fi
done
say "ok: $(wc -l <"$KED_DIR/observed") frames observed on the broker, no NTAG or plaintext in clear"

# 7. No secret in any log line: NTAGs, plaintext, private keys.
for secret in "$delta_ntag" "$good" "plaintext-canary-0123" "$(printf 'plaintext-canary-0123' | od -An -v -tx1 | tr -d ' \n')"; do
  if grep -rqi -- "$secret" "$KED_DIR/logs" "$KED_DIR/broker/mosquitto.log"; then
    die "a secret appears in a log"
  fi
done
if grep -rq "PRIVATE KEY" "$KED_DIR/logs"; then die "a private key appears in a log"; fi
say "ok: no NTAG, plaintext or private key in $(cat "$KED_DIR"/logs/*.log | wc -l) log lines"

# 8. A node identity subscribing to everything receives nothing of others'.
bash "$src/provisioning/issue-cert.sh" "$KED_DIR/pki" "n${NODE_ID[charlie]}" >/dev/null
cn="n${NODE_ID[charlie]}"
timeout 3 mosquitto_sub -h 127.0.0.1 -p "$BROKER_PORT" --cafile "$KED_DIR/pki/ca.crt" \
  --cert "$KED_DIR/pki/$cn.crt" --key "$KED_DIR/pki/$cn.key" -i "$cn-snoop" \
  -t 'kgr/#' -t '#' -F '%t' >"$KED_DIR/snoop" 2>&1 &
snoop=$!
sleep 1
node alpha send --peer "${NODE_ID[bravo]}" --data "snoop test" >/dev/null
wait $snoop || true
if grep -q "^kgr/" "$KED_DIR/snoop"; then die "node identity read others' traffic: $(head -3 "$KED_DIR/snoop")"; fi
say "ok: a node identity subscribed to kgr/# and # received nothing of others' traffic"
echo "refusals: OK"
