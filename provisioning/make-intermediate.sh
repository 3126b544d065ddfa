#!/usr/bin/env bash
# make-intermediate.sh ROOT_DIR OUT_DIR NAME — an issuing CA below the KED
# root (make-ca.sh ROOT_DIR), for node certificates, so that the root key
# can stay offline after provisioning:
#   OUT_DIR/NAME.key    ECDSA P-256 private key, mode 0600
#   OUT_DIR/NAME.crt    the intermediate's certificate (signed by the root;
#                       the chain a node sends with its own: the broker
#                       trusts only the root)
#   OUT_DIR/NAME.crl    an empty CRL of the intermediate, signed with its key
#                       (the broker, with a crlfile, needs one per issuer)
# Subject O=kgr, OU=kgr-ca, CN=NAME; basicConstraints CA:TRUE, pathlen:0
# (signs only end-entity certificates); keyCertSign, cRLSign.
# Typical: NAME=kgr-ac-ca (kgr-ac authorize --issuing-ca) and NAME=kgr-ks-ca
# (the KS's renewals, node_ca in its config), each short-lived.
# Idempotent: an existing matching pair is kept (KGR_FORCE=1 re-issues).
# Env: KGR_INTERMEDIATE_DAYS (default 365), KGR_CRL_DAYS (default 30).
set -euo pipefail

die() { echo "make-intermediate.sh: $*" >&2; exit 1; }

[[ $# -eq 3 ]] || die "usage: make-intermediate.sh ROOT_DIR OUT_DIR NAME"
root=$1 out=$2 name=$3
command -v openssl >/dev/null || die "openssl not found"
[[ $name =~ ^[a-z0-9][a-z0-9-]{0,63}$ ]] || die "bad NAME '$name': use [a-z0-9-]"
days=${KGR_INTERMEDIATE_DAYS:-365}
crl_days=${KGR_CRL_DAYS:-30}
[[ -r $root/ca.key && -r $root/ca.crt ]] || die "no root CA in '$root' (run make-ca.sh $root)"
mkdir -p -- "$out"
key=$out/$name.key crt=$out/$name.crt crl=$out/$name.crl

if [[ -e $key || -e $crt ]] && [[ ${KGR_FORCE:-0} != 1 ]]; then
  [[ -s $key && -s $crt ]] || die "only one of $key/$crt exists; KGR_FORCE=1 to re-issue"
  openssl verify -CAfile "$root/ca.crt" "$crt" >/dev/null 2>&1 ||
    die "$crt does not verify against $root/ca.crt; KGR_FORCE=1 to re-issue"
  [[ $(openssl pkey -in "$key" -pubout) == "$(openssl x509 -in "$crt" -noout -pubkey)" ]] ||
    die "$key does not match $crt"
  echo "make-intermediate.sh: $crt exists, keeping it"
  exit 0
fi

umask 077
tmp=$(mktemp -d "$out/.int.XXXXXX")
trap 'rm -rf -- "$tmp"' EXIT
cat >"$tmp/ext.cnf" <<CNF
basicConstraints=critical,CA:TRUE,pathlen:0
keyUsage=critical,keyCertSign,cRLSign
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
CNF
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
  -out "$tmp/key.pem" 2>/dev/null
openssl req -new -key "$tmp/key.pem" -subj "/O=kgr/OU=kgr-ca/CN=$name" \
  -out "$tmp/req.csr"
openssl x509 -req -in "$tmp/req.csr" -CA "$root/ca.crt" -CAkey "$root/ca.key" \
  -set_serial "0x$(openssl rand -hex 16)" -days "$days" -sha256 \
  -extfile "$tmp/ext.cnf" -out "$tmp/crt.pem" 2>/dev/null
# An empty CRL of the new CA (openssl ca needs its little database).
touch "$tmp/index.txt"
cat >"$tmp/ca.cnf" <<CNF
[ca]
default_ca = int
[int]
database = $tmp/index.txt
default_md = sha256
default_crl_days = $crl_days
CNF
openssl ca -config "$tmp/ca.cnf" -gencrl -keyfile "$tmp/key.pem" \
  -cert "$tmp/crt.pem" -out "$tmp/crl.pem" 2>/dev/null
chmod 0644 "$tmp/crt.pem" "$tmp/crl.pem"
mv -f -- "$tmp/key.pem" "$key"
mv -f -- "$tmp/crt.pem" "$crt"
mv -f -- "$tmp/crl.pem" "$crl"
echo "make-intermediate.sh: issued $crt (pathlen 0, $days days) and $crl"
