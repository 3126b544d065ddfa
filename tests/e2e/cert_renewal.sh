#!/usr/bin/env bash
# Broker certificates that renew themselves: alpha's first certificate
# (from the AC's intermediate) lives 90 s. The alpha daemon, never
# restarted, makes a new key and a CSR at 67% of the validity and sends it
# to the KS over the NKSK channel (cert_renew_req); the KS signs it with the
# issuing CA the AC delegated (kgr-ks-ca, pathlen 0), alpha installs cert
# and key and reconnects with them. Keys keep flowing throughout; once the
# first certificate has expired, a broker restart makes alpha connect anew,
# which only the renewed certificate can do. bravo does the same with the
# Paho client (--mqtt-client paho), whose Reconnect makes a new TLS context.
set -euo pipefail
src=${KGR_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
export TSS2_LOG=all+none KED_TRACE=1 KED_INTERMEDIATE=1
source "$src/tests/e2e/ked.bash"

ked_init
KED_AC_CA_ARGS+=(--cert-seconds 90)
KS_EXTRA_ARGS="--node-cert-seconds 90"  # node CA: KED_KS_CA_ARGS (ked.bash)
NODE_ARGS[bravo]="--mqtt-client paho"
ked_broker_up
ked_ks_up
ked_pair alpha bravo
tls=$KED_DIR/node-alpha/tls
cert_field() { openssl x509 -in "$tls/cert.pem" -noout "$1" | cut -d= -f2-; }
serial0=$(cert_field -serial)
end0=$(date -d "$(cert_field -enddate)" +%s)
pid0=${NODE_PID[alpha]}
[[ $(cert_field -issuer) == *kgr-ac-ca* ]] || die "the first certificate is not the AC intermediate's"
say "ok: alpha's first certificate $serial0 expires at $end0 ($((end0 - $(date +%s))) s from now)"

keys_flow() {  # a data exchange and a session key renewal, alpha <-> bravo
  node alpha send --peer "${NODE_ID[bravo]}" --data "$1" | grep -q "ack ${#1} bytes" ||
    die "alpha -> bravo failed ($1)"
  node alpha renew --peer "${NODE_ID[bravo]}" >/dev/null || die "key renewal failed ($1)"
}
keys_flow "before renewal"
renewed=0
for _ in $(seq 120); do
  if [[ $(cert_field -serial) != "$serial0" ]]; then renewed=1; break; fi
  keys_flow "waiting"
  sleep 1
done
((renewed)) || die "alpha's certificate was not renewed"
serial1=$(cert_field -serial)
[[ $(cert_field -issuer) == *kgr-ks-ca* ]] || die "the renewed certificate is not the KS intermediate's"
openssl verify -CAfile "$KED_DIR/pki/ca.crt" -untrusted "$tls/cert.pem" "$tls/cert.pem" >/dev/null ||
  die "the renewed chain does not verify against the root"
[[ $(openssl pkey -in "$tls/key.pem" -pubout) == "$(openssl x509 -in "$tls/cert.pem" -noout -pubkey)" ]] ||
  die "key.pem does not match cert.pem"
[[ $(stat -c %a "$tls/key.pem") == 600 ]] || die "key.pem is not 0600"
grep -q "gets a new broker certificate (serial $serial1" "$KED_DIR/logs/ks.log" ||
  die "the KS did not log signing $serial1"
grep -q "installed broker certificate serial $serial1" "$KED_DIR/logs/alpha.log" ||
  die "alpha did not log installing $serial1"
[[ ${NODE_PID[alpha]} == "$pid0" ]] && kill -0 "$pid0" || die "alpha's process was restarted"
say "ok: alpha renewed by itself: $serial0 -> $serial1 (KS intermediate), same process"
keys_flow "after renewal"
# bravo (Paho) renewed too, and reconnected with the new files at once: the
# broker saw it connect again before its first certificate expired.
bravo_tls=$KED_DIR/node-bravo/tls
for _ in $(seq 60); do
  grep -q "installed broker certificate serial" "$KED_DIR/logs/bravo.log" && break
  sleep 1
done
grep -q "installed broker certificate serial" "$KED_DIR/logs/bravo.log" ||
  die "bravo (paho) did not renew its certificate"
grep -q "reconnecting with the client certificate files read again" "$KED_DIR/logs/bravo.log" ||
  die "bravo's paho transport did not reconnect after the renewal"
for _ in $(seq 50); do
  (($(grep -c "u'n${NODE_ID[bravo]}'" "$KED_DIR/broker/mosquitto.log") >= 2)) && break
  sleep 0.2
done
(($(grep -c "u'n${NODE_ID[bravo]}'" "$KED_DIR/broker/mosquitto.log") >= 2)) ||
  die "the broker did not see bravo (paho) connect again after its renewal"
[[ $(openssl x509 -in "$bravo_tls/cert.pem" -noout -issuer) == *kgr-ks-ca* ]] ||
  die "bravo's renewed certificate is not the KS intermediate's"
say "ok: bravo (paho) renewed and reconnected with the new certificate, same process"

# Until the first certificate has expired, then the broker makes everyone
# connect anew: alpha can only do so with the renewed one.
while (($(date +%s) <= end0 + 2)); do keys_flow "until expiry"; sleep 2; done
kill -TERM "$BROKER_PID"; wait "$BROKER_PID" 2>/dev/null || true
mark=$(wc -l <"$KED_DIR/broker/mosquitto.log")
broker_start
ok=0
for _ in $(seq 30); do
  if node alpha send --peer "${NODE_ID[bravo]}" --data "after expiry" 2>/dev/null |
    grep -q "ack 12 bytes"; then ok=1; break; fi
  sleep 1
done
((ok)) || die "alpha cannot work after its first certificate expired"
tail -n +"$mark" "$KED_DIR/broker/mosquitto.log" | grep -q "u'n${NODE_ID[alpha]}'" ||
  die "the broker did not see alpha connect after the restart"
now_serial=$(cert_field -serial)
[[ $now_serial != "$serial0" ]] || die "alpha is back on its first certificate"
[[ $(date +%s) -gt $end0 ]] || die "the first certificate had not expired yet"
node alpha renew --peer "${NODE_ID[bravo]}" >/dev/null || die "key renewal after expiry failed"
kill -0 "$pid0" || die "alpha's process died"
say "ok: after the first certificate expired, alpha reconnected (certificate $now_serial) and keys still flow"
echo "cert_renewal: OK"
