#!/usr/bin/env bash
# Revocation cuts the connection, without a manual step: node certificates
# come from an intermediate CA (the root key is not used after
# provisioning); `kgr-ac revoke` adds alpha's certificate to the
# intermediate's CRL, its crl_hook (broker-config/reload-crl.sh) rebuilds the
# broker's CRL file and makes Mosquitto re-read it, and the AC cuts alpha's
# open connection (MQTT session takeover). alpha's reconnects are refused in
# the TLS handshake; bravo stays connected and keeps working.
set -euo pipefail
src=${KGR_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
export TSS2_LOG=all+none KED_TRACE=1 KED_INTERMEDIATE=1
source "$src/tests/e2e/ked.bash"

ked_init
ked_broker_up
ked_ks_up
ked_pair alpha bravo
cn_a="n${NODE_ID[alpha]}" cn_b="n${NODE_ID[bravo]}"
broker_log=$KED_DIR/broker/mosquitto.log
# The chain (node certificate + intermediate) verifies at a broker that
# trusts only the root.
issuer=$(openssl x509 -in "$KED_DIR/node-alpha/tls/cert.pem" -noout -issuer)
[[ $issuer == *"CN = kgr-ac-ca"* ]] || die "alpha's certificate is not from the intermediate: $issuer"
grep -q "as $cn_a" "$broker_log" || die "the broker never saw $cn_a connect"
node alpha send --peer "${NODE_ID[bravo]}" --data "before" | grep -q "ack 6 bytes" ||
  die "alpha-bravo do not work before the revocation"
say "ok: alpha and bravo connected with intermediate-issued certificates"

lines_before=$(wc -l <"$KED_DIR/logs/alpha.log")
hup_before=$(grep -c "Reloading config" "$broker_log" || true)
out=$(ac revoke --node "${NODE_ID[alpha]}" 2>>"$KED_DIR/logs/ac.log") || die "revoke failed: $out"
[[ $out == *"crl_hook ran"* ]] || die "revoke did not run the hook: $out"
[[ $out == *"connection was cut"* ]] || die "revoke did not cut the connection: $out"
hup_after=$(grep -c "Reloading config" "$broker_log" || true)
((hup_after > hup_before)) || die "the broker did not reload its CRL"
openssl storeutl -noout -text -crls "$KED_DIR/pki/crl.pem" 2>/dev/null | grep -qi \
  "$(openssl x509 -in "$KED_DIR/node-alpha/tls/cert.pem" -noout -serial | cut -d= -f2)" ||
  die "the broker's CRL file lacks alpha's serial"
# alpha's open connection is gone, and its reconnects fail (give it a few
# back-off rounds).
for _ in $(seq 100); do
  tail -n +"$lines_before" "$KED_DIR/logs/alpha.log" | grep -q "connection lost" && break
  sleep 0.1
done
tail -n +"$lines_before" "$KED_DIR/logs/alpha.log" | grep -q "connection lost" ||
  die "alpha's connection was not cut"
sleep 4
kill -0 "${NODE_PID[alpha]}" || die "alpha's process died"
refused=$(awk '/Reloading config/ {r=1} r && /certificate verify failed/ {n++} END {print n+0}' "$broker_log")
((refused >= 1)) || die "the broker refused no handshake after the reload (alpha's reconnects)"
connected_after=$(awk -v c="u'$cn_a'" '/Reloading config/ {r=1} r && index($0, c) {n++} END {print n+0}' "$broker_log")
[[ $connected_after == 0 ]] || die "alpha connected again after the reload ($connected_after)"
say "ok: alpha's open connection was cut and its reconnects refused ($refused TLS handshakes), no SIGHUP by hand"

rc=$(ked_try_connect "$cn_a" "$KED_DIR/node-alpha/tls/cert.pem" "$KED_DIR/node-alpha/tls/key.pem")
[[ $rc != 27 && $rc != 0 ]] || die "the broker accepts the revoked identity (rc $rc)"
rc=$(ked_try_connect "$cn_b" "$KED_DIR/node-bravo/tls/cert.pem" "$KED_DIR/node-bravo/tls/key.pem")
[[ $rc == 27 ]] || die "the broker refuses bravo after the CRL update (rc $rc)"
node bravo status --json >/dev/null || die "bravo's control socket is gone"
say "ok: a new connection with alpha's certificate is refused; bravo still connects"
echo "revoke_cut: OK"
