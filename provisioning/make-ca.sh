#!/usr/bin/env bash
# make-ca.sh DIR — creates the KED certificate authority in DIR:
#   DIR/ca.key  ECDSA P-256 private key, mode 0600 (keep it offline)
#   DIR/ca.crt  self-signed CA certificate (CN=kgr-ca), 10 years
# Idempotent: if DIR/ca.key and DIR/ca.crt exist and match, nothing is done.
# Env: KGR_CA_CN (default kgr-ca), KGR_CA_DAYS (default 3650).
set -euo pipefail

die() { echo "make-ca.sh: $*" >&2; exit 1; }

[[ $# -eq 1 ]] || die "usage: make-ca.sh DIR"
dir=$1
command -v openssl >/dev/null || die "openssl not found"
cn=${KGR_CA_CN:-kgr-ca}
days=${KGR_CA_DAYS:-3650}

mkdir -p -- "$dir"
key=$dir/ca.key
crt=$dir/ca.crt

if [[ -e $key || -e $crt ]]; then
  [[ -s $key && -s $crt ]] || die "$dir has only one of ca.key/ca.crt; refusing to overwrite"
  k=$(openssl pkey -in "$key" -pubout 2>/dev/null) || die "$key is not a readable private key"
  c=$(openssl x509 -in "$crt" -noout -pubkey 2>/dev/null) || die "$crt is not a certificate"
  [[ $k == "$c" ]] || die "$key does not match $crt"
  echo "make-ca.sh: CA exists in $dir, keeping it"
  exit 0
fi

umask 077
tmp=$(mktemp -d "$dir/.ca.XXXXXX")
trap 'rm -rf -- "$tmp"' EXIT
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
  -out "$tmp/ca.key" 2>/dev/null
openssl req -new -x509 -key "$tmp/ca.key" -sha256 -days "$days" \
  -subj "/O=kgr/OU=kgr-ca/CN=$cn" \
  -addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
  -addext "keyUsage=critical,keyCertSign,cRLSign" \
  -addext "subjectKeyIdentifier=hash" \
  -out "$tmp/ca.crt"
chmod 0600 "$tmp/ca.key"
chmod 0644 "$tmp/ca.crt"
mv -- "$tmp/ca.key" "$key"
mv -- "$tmp/ca.crt" "$crt"
echo "make-ca.sh: created $crt"
