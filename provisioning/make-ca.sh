#!/usr/bin/env bash
# make-ca.sh DIR — creates the KED certificate authority in DIR:
#   DIR/ca.key  ECDSA P-256 private key, mode 0600 (keep it offline)
#   DIR/ca.crt  self-signed CA certificate (CN=kgr-ca), 10 years, pathlen 1:
#               it may sign intermediates (make-intermediate.sh) that sign
#               node certificates, so that this key can stay offline
#   DIR/ca.crl  an empty CRL of the root, KGR_CRL_DAYS (default 365) long: a
#               broker with a crlfile needs one CRL per issuer (the root
#               issues the KS, AC and broker certificates)
# Idempotent: if DIR/ca.key and DIR/ca.crt exist and match, nothing is done
# (but a missing ca.crl is made).
# Env: KGR_CA_CN (default kgr-ca), KGR_CA_DAYS (default 3650).
set -euo pipefail

die() { echo "make-ca.sh: $*" >&2; exit 1; }

[[ $# -eq 1 ]] || die "usage: make-ca.sh DIR"
dir=$1
command -v openssl >/dev/null || die "openssl not found"
cn=${KGR_CA_CN:-kgr-ca}
days=${KGR_CA_DAYS:-3650}

mkdir -p -- "$dir"

make_crl() {  # make_crl KEY CRT OUT: an empty CRL (openssl ca needs a database)
  local t; t=$(mktemp -d)
  touch "$t/index.txt"
  printf '[ca]\ndefault_ca = c\n[c]\ndatabase = %s\ndefault_md = sha256\ndefault_crl_days = %s\n' \
    "$t/index.txt" "${KGR_CRL_DAYS:-365}" >"$t/ca.cnf"
  openssl ca -config "$t/ca.cnf" -gencrl -keyfile "$1" -cert "$2" -out "$t/crl.pem" 2>/dev/null
  chmod 0644 "$t/crl.pem"
  mv -f -- "$t/crl.pem" "$3"
  rm -rf -- "$t"
}
key=$dir/ca.key
crt=$dir/ca.crt

if [[ -e $key || -e $crt ]]; then
  [[ -s $key && -s $crt ]] || die "$dir has only one of ca.key/ca.crt; refusing to overwrite"
  k=$(openssl pkey -in "$key" -pubout 2>/dev/null) || die "$key is not a readable private key"
  c=$(openssl x509 -in "$crt" -noout -pubkey 2>/dev/null) || die "$crt is not a certificate"
  [[ $k == "$c" ]] || die "$key does not match $crt"
  echo "make-ca.sh: CA exists in $dir, keeping it"
  [[ -e $dir/ca.crl ]] || make_crl "$key" "$crt" "$dir/ca.crl"
  exit 0
fi

umask 077
tmp=$(mktemp -d "$dir/.ca.XXXXXX")
trap 'rm -rf -- "$tmp"' EXIT
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
  -out "$tmp/ca.key" 2>/dev/null
openssl req -new -x509 -key "$tmp/ca.key" -sha256 -days "$days" \
  -subj "/O=kgr/OU=kgr-ca/CN=$cn" \
  -addext "basicConstraints=critical,CA:TRUE,pathlen:1" \
  -addext "keyUsage=critical,keyCertSign,cRLSign" \
  -addext "subjectKeyIdentifier=hash" \
  -out "$tmp/ca.crt"
chmod 0600 "$tmp/ca.key"
chmod 0644 "$tmp/ca.crt"
mv -- "$tmp/ca.key" "$key"
mv -- "$tmp/ca.crt" "$crt"
make_crl "$key" "$crt" "$dir/ca.crl"
echo "make-ca.sh: created $crt"
