#!/usr/bin/env bash
# group-acl.sh --acl BASE --groups JSON --out FILE [--prefix P] [--pid-file F]
#
# The broker's ACL with each group's members (docs/broker.md "Groups"): the
# base ACL (broker-config/acl as render.sh wrote it) followed by, for each
# member of each group in JSON (`kgr-ac group list --json`),
#
#   user n<member>
#   topic read <prefix>/g<group id>/#
#
# so that a member reads its groups' rekey and data topics and nobody else
# does (writes are open under the prefix: rekeys are signed by the KS, group
# data sealed under the group key). Written atomically (mode 0644); with
# --pid-file the broker gets SIGHUP and re-reads it. Run it after every
# `kgr-ac group create|add|remove|delete` and `revoke`.
set -euo pipefail

die() { echo "group-acl.sh: $*" >&2; exit 1; }
acl= groups= out= prefix=kgr pid_file=
while [[ $# -gt 0 ]]; do
  [[ $# -ge 2 ]] || die "option $1 needs a value"
  case $1 in
    --acl) acl=$2 ;;
    --groups) groups=$2 ;;
    --out) out=$2 ;;
    --prefix) prefix=$2 ;;
    --pid-file) pid_file=$2 ;;
    *) die "unknown option $1" ;;
  esac
  shift 2
done
[[ -n $acl && -n $groups && -n $out ]] ||
  die "usage: group-acl.sh --acl BASE --groups JSON --out FILE [--prefix P] [--pid-file F]"
[[ $prefix =~ ^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$ ]] || die "bad --prefix '$prefix'"
tmp=$(mktemp "$out.XXXXXX")
trap 'rm -f -- "$tmp"' EXIT
cat -- "$acl" >"$tmp" || die "cannot read $acl"
/usr/bin/python3 - "$groups" "$prefix" >>"$tmp" <<'PY' || die "bad group list $groups"
import json, re, sys
groups = json.load(open(sys.argv[1]))
prefix = sys.argv[2]
print("\n# Groups (group-acl.sh): each member reads its groups' subtree.")
for g in groups:
    gid = g["id"]
    if not re.fullmatch(r"[0-9a-f]{8}", gid):
        raise SystemExit("bad group id")
    for m in g["members"]:
        if not re.fullmatch(r"[0-9a-f]{8}", m):
            raise SystemExit("bad member id")
        print(f"user n{m}\ntopic read {prefix}/g{gid}/#")
PY
chmod 0644 "$tmp"
mv -f -- "$tmp" "$out"
if [[ -n $pid_file ]]; then
  pid=$(<"$pid_file") || die "cannot read $pid_file"
  [[ $pid =~ ^[0-9]+$ ]] || die "$pid_file holds no pid"
  kill -HUP "$pid" || die "cannot signal the broker (pid $pid)"
fi
