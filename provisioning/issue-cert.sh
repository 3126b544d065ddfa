#!/usr/bin/env bash
# issue-cert.sh DIR CN [ROLE] — issues DIR/CN.crt and DIR/CN.key (ECDSA
# P-256), signed by the CA in DIR (see make-ca.sh).
#
# ROLE (written to the subject as OU=kgr-ROLE):
#   ks      Key Server; CN must be "ks" (the broker ACL grants kgr/register
#           to user ks)                      extendedKeyUsage clientAuth
#   ac      Authorization Centre             clientAuth
#   node    a node; CN must be n<8 lower-case hex digits of N_ID>, clientAuth
#   broker  the Mosquitto server             serverAuth,
#           SAN IP:127.0.0.1,DNS:localhost (+ KGR_BROKER_SAN, e.g.
#           "DNS:broker.example,IP:10.0.0.5")
#   etcd    an etcd member's client URL (KS cluster, docs/cluster.md)
#           serverAuth,clientAuth (etcd's JSON gateway dials the member's
#           own gRPC port with it under --client-cert-auth), SAN as for
#           broker (+ KGR_BROKER_SAN)
# Without ROLE it is derived from CN: ks -> ks, ac -> ac, n<8hex> -> node.
#
# The CN becomes the MQTT user name (use_identity_as_username), so it is
# restricted to [a-z0-9-], 1..64 characters.
#
# Keys are mode 0600. The broker key is 0640 with group mosquitto when that
# group exists and we may chgrp (Mosquitto reads it after dropping root).
# Idempotent: an existing valid CN.crt/CN.key pair is kept; KGR_FORCE=1
# re-issues. Env: KGR_CERT_DAYS (default 825).
set -euo pipefail

die() { echo "issue-cert.sh: $*" >&2; exit 1; }

[[ $# -ge 2 && $# -le 3 ]] || die "usage: issue-cert.sh DIR CN [ks|ac|node|broker|etcd]"
dir=$1 cn=$2 role=${3:-}
command -v openssl >/dev/null || die "openssl not found"
days=${KGR_CERT_DAYS:-825}

[[ $cn =~ ^[a-z0-9][a-z0-9-]{0,63}$ ]] || die "bad CN '$cn': use [a-z0-9-], at most 64 characters"
if [[ -z $role ]]; then
  case $cn in
    ks) role=ks ;;
    ac) role=ac ;;
    *) if [[ $cn =~ ^n[0-9a-f]{8}$ ]]; then role=node; else
         die "cannot derive a role from CN '$cn'; give ks|ac|node|broker"; fi ;;
  esac
fi
case $role in
  ks) [[ $cn == ks ]] || die "role ks needs CN ks (the broker ACL names it)"
      eku=clientAuth ;;
  ac) [[ $cn != ks ]] || die "CN ks is reserved for role ks"
      eku=clientAuth ;;
  node) [[ $cn =~ ^n[0-9a-f]{8}$ ]] || die "node CN must be n<8 lower-case hex>, got '$cn'"
        eku=clientAuth ;;
  broker) [[ $cn != ks ]] || die "CN ks is reserved for role ks"
          eku=serverAuth ;;
  etcd) [[ $cn != ks ]] || die "CN ks is reserved for role ks"
        eku=serverAuth,clientAuth ;;
  *) die "unknown role '$role' (ks|ac|node|broker|etcd)" ;;
esac

ca_key=$dir/ca.key ca_crt=$dir/ca.crt
[[ -r $ca_key && -r $ca_crt ]] || die "no CA in '$dir' (run make-ca.sh $dir)"
key=$dir/$cn.key crt=$dir/$cn.crt

set_key_mode() {
  if [[ $role == broker ]] && getent group mosquitto >/dev/null &&
     chgrp mosquitto "$1" 2>/dev/null; then
    chmod 0640 "$1"
  else
    chmod 0600 "$1"
    if [[ $role == broker ]]; then
      echo "issue-cert.sh: warning: $1 is 0600; make it readable by the broker's user" >&2
    fi
  fi
}

if [[ -e $crt || -e $key ]] && [[ ${KGR_FORCE:-0} != 1 ]]; then
  [[ -s $crt && -s $key ]] || die "only one of $crt/$key exists; KGR_FORCE=1 to re-issue"
  openssl verify -CAfile "$ca_crt" "$crt" >/dev/null 2>&1 ||
    die "$crt does not verify against $ca_crt; KGR_FORCE=1 to re-issue"
  k=$(openssl pkey -in "$key" -pubout 2>/dev/null) || die "$key unreadable"
  c=$(openssl x509 -in "$crt" -noout -pubkey)
  [[ $k == "$c" ]] || die "$key does not match $crt; KGR_FORCE=1 to re-issue"
  subj=$(openssl x509 -in "$crt" -noout -subject -nameopt RFC2253)
  [[ $subj == *"OU=kgr-$role"* ]] || die "$crt has another role ($subj); KGR_FORCE=1 to re-issue"
  set_key_mode "$key"
  echo "issue-cert.sh: $crt exists, keeping it"
  exit 0
fi

umask 077
tmp=$(mktemp -d "$dir/.issue.XXXXXX")
trap 'rm -rf -- "$tmp"' EXIT
{
  echo "basicConstraints=critical,CA:FALSE"
  echo "keyUsage=critical,digitalSignature"
  echo "extendedKeyUsage=$eku"
  echo "subjectKeyIdentifier=hash"
  echo "authorityKeyIdentifier=keyid"
  if [[ $role == broker || $role == etcd ]]; then
    san="IP:127.0.0.1,DNS:localhost"
    [[ -n ${KGR_BROKER_SAN:-} ]] && san="$san,$KGR_BROKER_SAN"
    echo "subjectAltName=$san"
  fi
} >"$tmp/ext.cnf"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
  -out "$tmp/key.pem" 2>/dev/null
openssl req -new -key "$tmp/key.pem" -subj "/O=kgr/OU=kgr-$role/CN=$cn" \
  -out "$tmp/req.csr"
openssl x509 -req -in "$tmp/req.csr" -CA "$ca_crt" -CAkey "$ca_key" \
  -set_serial "0x$(openssl rand -hex 16)" -days "$days" -sha256 \
  -extfile "$tmp/ext.cnf" -out "$tmp/crt.pem" 2>/dev/null
chmod 0644 "$tmp/crt.pem"
mv -f -- "$tmp/key.pem" "$key"
set_key_mode "$key"
mv -f -- "$tmp/crt.pem" "$crt"
echo "issue-cert.sh: issued $crt (OU=kgr-$role)"
