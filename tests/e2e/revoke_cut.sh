#!/usr/bin/env bash
# Revocation cuts the connection, without a manual step, also for a
# certificate the KS renewed: node certificates come from the AC's
# intermediate CA (the root key is not used after provisioning); alpha
# renews its own at once through the KS (kgr-ks-ca). `kgr-ac revoke` makes
# the KS revoke alpha: the KS writes kgr-ks-ca's CRL with alpha's KS-signed
# serial and runs its hook before answering; then the AC adds alpha's first
# certificate to kgr-ac-ca's CRL and runs the same hook
# (broker-config/reload-crl.sh: one crlfile with the CRLs of the root and
# both intermediates; Mosquitto re-reads it on SIGHUP), and cuts alpha's open
# connection (MQTT session takeover). alpha's reconnects with its renewed
# certificate are refused in the TLS handshake; bravo stays connected and
# keeps working until it is revoked in turn (its certificate is the AC
# intermediate's: the second CRL of the same file refuses it).
set -euo pipefail
src=${KGR_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
export TSS2_LOG=all+none KED_TRACE=1 KED_INTERMEDIATE=1
source "$src/tests/e2e/ked.bash"

ked_init
# The AC's certificates live an hour: alpha (renewal at 1% of the
# validity) renews its own through the KS as soon as it is registered;
# bravo does not (67%).
KED_AC_CA_ARGS+=(--cert-seconds 3600)
NODE_ARGS[alpha]="--cert-renew-at-percent 1"
ked_broker_up
ked_ks_up
ked_pair alpha bravo
cn_a="n${NODE_ID[alpha]}" cn_b="n${NODE_ID[bravo]}"
broker_log=$KED_DIR/broker/mosquitto.log
serial_of() { openssl x509 -in "$1" -noout -serial | cut -d= -f2; }
first_a=$(serial_of "$KED_DIR/pki/issued/$cn_a.crt")
for _ in $(seq 150); do
  [[ $(serial_of "$KED_DIR/node-alpha/tls/cert.pem") != "$first_a" ]] && break
  sleep 0.2
done
renewed_a=$(serial_of "$KED_DIR/node-alpha/tls/cert.pem")
[[ $renewed_a != "$first_a" ]] || die "alpha did not renew its certificate through the KS"
grep -q "installed broker certificate serial $renewed_a" "$KED_DIR/logs/alpha.log" ||
  die "alpha did not install $renewed_a"
# The chains (node certificate + intermediate) verify at a broker that
# trusts only the root.
issuer=$(openssl x509 -in "$KED_DIR/node-alpha/tls/cert.pem" -noout -issuer)
[[ $issuer == *"CN = kgr-ks-ca"* ]] || die "alpha's renewed certificate is not the KS intermediate's: $issuer"
issuer=$(openssl x509 -in "$KED_DIR/node-bravo/tls/cert.pem" -noout -issuer)
[[ $issuer == *"CN = kgr-ac-ca"* ]] || die "bravo's certificate is not from the AC intermediate: $issuer"
grep -q "as $cn_a" "$broker_log" || die "the broker never saw $cn_a connect"
say "ok: alpha renewed its certificate through the KS ($first_a -> $renewed_a)"
node alpha send --peer "${NODE_ID[bravo]}" --data "before" | grep -q "ack 6 bytes" ||
  die "alpha-bravo do not work before the revocation"
rc=$(ked_try_connect "$cn_a" "$KED_DIR/node-alpha/tls/cert.pem" "$KED_DIR/node-alpha/tls/key.pem")
[[ $rc == 27 ]] || die "the broker refuses alpha's renewed certificate before the revocation (rc $rc)"
say "ok: alpha and bravo connected with intermediate-issued certificates"

lines_before=$(wc -l <"$KED_DIR/logs/alpha.log")
hup_before=$(grep -c "Reloading config" "$broker_log" || true)
broker_mark=$(($(wc -l <"$broker_log") + 1))  # (the KS's start reloaded it too)
out=$(ac revoke --node "${NODE_ID[alpha]}" 2>>"$KED_DIR/logs/ac.log") || die "revoke failed: $out"
[[ $out == *"crl_hook ran"* ]] || die "revoke did not run the hook: $out"
[[ $out == *"connection was cut"* ]] || die "revoke did not cut the connection: $out"
grep -q "node CRL $KED_DIR/pki/int/kgr-ks-ca.crl written (1 revoked" "$KED_DIR/logs/ks.log" ||
  die "the KS did not write its node CRL with alpha's certificate"
hup_after=$(grep -c "Reloading config" "$broker_log" || true)
((hup_after >= hup_before + 2)) || die "the broker did not reload the CRLs (KS and AC hooks)"
crls=$(openssl storeutl -noout -text -crls "$KED_DIR/pki/crl.pem" 2>/dev/null)
grep -qi "$renewed_a" <<<"$crls" || die "the broker's CRL file lacks alpha's KS-signed serial"
grep -qi "$first_a" <<<"$crls" || die "the broker's CRL file lacks alpha's first serial"
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
refused=$(tail -n +"$broker_mark" "$broker_log" |
  awk '/Reloading config/ {r=1} r && /certificate verify failed/ {n++} END {print n+0}')
((refused >= 1)) || die "the broker refused no handshake after the reload (alpha's reconnects)"
connected_after=$(tail -n +"$broker_mark" "$broker_log" |
  awk -v c="u'$cn_a'" '/Reloading config/ {r=1} r && index($0, c) {n++} END {print n+0}')
[[ $connected_after == 0 ]] || die "alpha connected again after the reload ($connected_after)"
say "ok: alpha's open connection was cut and its reconnects refused ($refused TLS handshakes), no SIGHUP by hand"

rc=$(ked_try_connect "$cn_a" "$KED_DIR/node-alpha/tls/cert.pem" "$KED_DIR/node-alpha/tls/key.pem")
[[ $rc != 27 && $rc != 0 ]] || die "the broker accepts the revoked identity (rc $rc)"
rc=$(ked_try_connect "$cn_b" "$KED_DIR/node-bravo/tls/cert.pem" "$KED_DIR/node-bravo/tls/key.pem")
[[ $rc == 27 ]] || die "the broker refuses bravo after the CRL update (rc $rc)"
node bravo status --json >/dev/null || die "bravo's control socket is gone"
say "ok: a new connection with alpha's KS-renewed certificate is refused; bravo still connects"

# bravo's certificate is the AC intermediate's: refused through the other
# CRL of the same file.
out=$(ac revoke --node "${NODE_ID[bravo]}" 2>>"$KED_DIR/logs/ac.log") || die "revoke bravo failed: $out"
rc=$(ked_try_connect "$cn_b" "$KED_DIR/node-bravo/tls/cert.pem" "$KED_DIR/node-bravo/tls/key.pem")
[[ $rc != 27 && $rc != 0 ]] || die "the broker accepts revoked bravo (rc $rc)"
say "ok: bravo (AC intermediate) refused after its revocation: both CRLs of one crlfile apply"
echo "revoke_cut: OK"
