#!/usr/bin/env bash
# render.sh — writes a Mosquitto configuration for kgr.
#
#   render.sh --out-dir DIR --port PORT --cafile F --certfile F --keyfile F
#             [--bind ADDR] [--prefix kgr] [--persistence-dir D]
#             [--tls-version tlsv1.3|tlsv1.2] [--log-file PATH]
#             [--crlfile PATH]   (revoked client certificates; SIGHUP reloads)
#
# Produces DIR/mosquitto.conf (from mosquitto.conf.in) and DIR/acl (from acl,
# with the topic prefix replaced), both mode 0644. Defaults: bind 127.0.0.1,
# prefix kgr, persistence off, tls-version tlsv1.3, log to stderr.
# Paths are made absolute. Mosquitto started as root drops to user
# "mosquitto": every file named here must be readable by that user.
set -euo pipefail

die() { echo "render.sh: $*" >&2; exit 1; }
here=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)

out_dir= port= cafile= certfile= keyfile= bind=127.0.0.1 prefix=kgr
persist_dir= tls_version=tlsv1.3 log_file= crlfile=
while [[ $# -gt 0 ]]; do
  [[ $# -ge 2 ]] || die "option $1 needs a value"
  case $1 in
    --out-dir) out_dir=$2 ;;
    --port) port=$2 ;;
    --cafile) cafile=$2 ;;
    --certfile) certfile=$2 ;;
    --keyfile) keyfile=$2 ;;
    --bind) bind=$2 ;;
    --prefix) prefix=$2 ;;
    --persistence-dir) persist_dir=$2 ;;
    --tls-version) tls_version=$2 ;;
    --log-file) log_file=$2 ;;
    --crlfile) crlfile=$2 ;;
    *) die "unknown option $1" ;;
  esac
  shift 2
done

[[ -n $out_dir && -n $port && -n $cafile && -n $certfile && -n $keyfile ]] ||
  die "need --out-dir, --port, --cafile, --certfile, --keyfile"
[[ $port =~ ^[0-9]+$ ]] && ((port >= 1 && port <= 65535)) || die "bad port '$port'"
[[ $bind =~ ^[0-9A-Za-z.:-]+$ ]] || die "bad bind address '$bind'"
[[ $prefix =~ ^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$ ]] || die "bad topic prefix '$prefix'"
case $tls_version in tlsv1.2|tlsv1.3) ;; *) die "tls-version must be tlsv1.2 or tlsv1.3" ;; esac

abs() { [[ $1 == /* ]] && printf '%s' "$1" || printf '%s/%s' "$PWD" "$1"; }
# A path with a space or newline would break Mosquitto's line format.
check_path() { [[ $2 =~ ^[^[:space:]]+$ ]] || die "$1 '$2' must not contain white space"; }
cafile=$(abs "$cafile") certfile=$(abs "$certfile") keyfile=$(abs "$keyfile")
for v in cafile certfile keyfile; do
  check_path "$v" "${!v}"
  [[ -r ${!v} ]] || die "$v '${!v}' is not readable"
done
mkdir -p -- "$out_dir"
out_dir=$(cd -- "$out_dir" && pwd)
check_path out-dir "$out_dir"

if [[ -n $persist_dir ]]; then
  persist_dir=$(abs "$persist_dir")
  check_path persistence-dir "$persist_dir"
  persistence="persistence true
persistence_location ${persist_dir%/}/"
else
  persistence="persistence false"
fi
if [[ -n $log_file ]]; then
  log_file=$(abs "$log_file"); check_path log-file "$log_file"
  log_dest="file $log_file"
else
  log_dest=stderr
fi

tpl=$(<"$here/mosquitto.conf.in")
# Quoted replacements: no pattern or '&' expansion of the values.
tpl=${tpl//@PORT@/"$port"}
tpl=${tpl//@BIND@/"$bind"}
tpl=${tpl//@CAFILE@/"$cafile"}
tpl=${tpl//@CERTFILE@/"$certfile"}
tpl=${tpl//@KEYFILE@/"$keyfile"}
tpl=${tpl//@ACLFILE@/"$out_dir/acl"}
tpl=${tpl//@PERSISTENCE@/"$persistence"}
tpl=${tpl//@TLSVERSION@/"$tls_version"}
tpl=${tpl//@LOGDEST@/"$log_dest"}
if [[ -n $crlfile ]]; then
  # Revoked client certificates (kgr-ac revoke --crl): re-read on SIGHUP.
  crlfile=$(abs "$crlfile"); check_path crlfile "$crlfile"
  [[ -r $crlfile ]] || die "crlfile '$crlfile' is not readable (kgr-ac crl makes one)"
  tpl+=$'\n'"crlfile $crlfile"
fi
[[ $tpl != *@[A-Z]*@* ]] || die "unfilled placeholder in mosquitto.conf.in"

umask 022
printf '%s\n' "$tpl" >"$out_dir/mosquitto.conf.tmp"
# Topic lines of the ACL start with "kgr/" after the access word.
sed -E "s#^(pattern|topic)( +(read|write|readwrite))? +kgr/#\1\2 $prefix/#" \
  "$here/acl" >"$out_dir/acl.tmp"
chmod 0644 "$out_dir/mosquitto.conf.tmp" "$out_dir/acl.tmp"
mv -f -- "$out_dir/acl.tmp" "$out_dir/acl"
mv -f -- "$out_dir/mosquitto.conf.tmp" "$out_dir/mosquitto.conf"
echo "render.sh: wrote $out_dir/mosquitto.conf and $out_dir/acl"
