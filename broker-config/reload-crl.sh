#!/usr/bin/env bash
# reload-crl.sh --out FILE --pid-file FILE CRL...  — the broker's CRL hook.
#
# Mosquitto reads one crlfile and checks the client certificate's issuer's
# CRL (X509_V_FLAG_CRL_CHECK): with intermediates that file must hold one
# CRL per issuer (root: ca.crl; each intermediate: NAME.crl). This script
# concatenates the CRLs given (each must parse) into --out atomically (mode
# 0644) and sends the broker SIGHUP (pid from --pid-file, Mosquitto's
# pid_file), on which Mosquitto re-reads its configuration and the CRL for
# new connections. Open connections are not re-checked: `kgr-ac revoke`
# cuts the revoked node's connection itself after this hook.
#
# For kgr-ac: --crl-hook 'broker-config/reload-crl.sh --out /etc/kgr/broker/crl.pem
#   --pid-file /run/mosquitto/mosquitto.pid /etc/kgr/pki/ca.crl "$KGR_CRL_FILE" ...'
# With the broker under systemd, `systemctl reload mosquitto` instead of
# --pid-file does the same (Debian's unit sends SIGHUP).
set -euo pipefail

die() { echo "reload-crl.sh: $*" >&2; exit 1; }
out= pid_file=
while [[ $# -gt 0 && $1 == --* ]]; do
  [[ $# -ge 2 ]] || die "option $1 needs a value"
  case $1 in
    --out) out=$2 ;;
    --pid-file) pid_file=$2 ;;
    *) die "unknown option $1" ;;
  esac
  shift 2
done
[[ -n $out && -n $pid_file && $# -ge 1 ]] ||
  die "usage: reload-crl.sh --out FILE --pid-file FILE CRL..."
tmp=$(mktemp "$out.XXXXXX")
trap 'rm -f -- "$tmp"' EXIT
for crl in "$@"; do
  openssl crl -in "$crl" -noout 2>/dev/null || die "'$crl' is not a PEM CRL"
  cat -- "$crl" >>"$tmp"
done
chmod 0644 "$tmp"
mv -f -- "$tmp" "$out"
pid=$(<"$pid_file") || die "cannot read $pid_file"
[[ $pid =~ ^[0-9]+$ ]] || die "$pid_file holds no pid"
kill -HUP "$pid" || die "cannot signal the broker (pid $pid)"
