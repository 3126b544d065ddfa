#!/usr/bin/env bash
# The Debian packages, end to end on this machine (as root, after
# scripts/build.sh): cpack builds kgr-ks, kgr-node and kgr-ac from
# $BUILD_DIR (default build), dpkg -i installs them, then: the package
# contents, users and state directories, `systemd-analyze verify` on each
# unit, `file` on /usr/bin/kgr-node, the example configs parse, and the demo
# (scripts/demo.sh) runs against the installed binaries (KGR_BIN_DIR=/usr/bin).
# Finally dpkg --purge removes them and nothing they installed is left.
# Refuses to run if a kgr package is installed already (it would remove it).
# Ends with "test-packages: OK ..." or exits non-zero.
set -euo pipefail
cd "$(dirname "$0")/.."
src=$PWD
build=${BUILD_DIR:-build}
pkgs=(kgr-ks kgr-node kgr-ac)
die() { printf 'test-packages: FAIL: %s\n' "$*" >&2; exit 1; }
say() { printf 'test-packages: %s\n' "$*"; }
installed() { [[ $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true) == 'install ok installed' ]]; }

[[ $(id -u) -eq 0 ]] || die "run as root (dpkg -i)"
[[ -f $build/CMakeCache.txt ]] || die "no build in $build (scripts/build.sh first)"
for p in "${pkgs[@]}"; do
  installed "$p" && die "$p is installed already; remove it first (this test purges it)"
done

out=$(mktemp -d /tmp/kgr-packages-XXXXXX)
purge() { dpkg --purge "${pkgs[@]}" >/dev/null 2>&1 || true; rm -rf "$out"; }
trap purge EXIT

# 1. Build the packages.
ninja -C "$build" kgr-ks kgr-node kgr-ac >/dev/null
(cd "$build" && cpack -G DEB -B "$out" >"$out/cpack.log" 2>&1) ||
  { cat "$out/cpack.log"; die "cpack failed"; }
arch=$(dpkg --print-architecture)
declare -A deb=()
for p in "${pkgs[@]}"; do
  deb[$p]=$(ls "$out"/"${p}"_*_"$arch".deb 2>/dev/null | head -1)
  [[ -n ${deb[$p]} ]] || die "cpack made no ${p}_*_$arch.deb (in $out)"
done
say "built $(cd "$out" && ls ./*.deb | tr '\n' ' ')"

# 2. What each package holds and needs.
contents() { dpkg-deb -c "${deb[$1]}" | awk '{print $6}' | sed 's|^\./|/|'; }
expect_file() {  # expect_file PKG PATH
  grep -qx "$2" <<<"$(contents "$1")" || die "$1 lacks $2"
}
for p in kgr-ks kgr-node; do
  role=${p#kgr-}
  expect_file "$p" "/usr/bin/$p"
  expect_file "$p" "/etc/kgr/$role.json"
  expect_file "$p" "/lib/systemd/system/$p.service"
  depends=$(dpkg-deb -f "${deb[$p]}" Depends)
  for d in adduser tpm-udev libtss2-tcti-device0 libsystemd0 libssl3 libtss2-esys; do
    grep -q "$d" <<<"$depends" || die "$p: Depends lacks $d (got: $depends)"
  done
  control=$(dpkg-deb --ctrl-tarfile "${deb[$p]}" | tar -t)
  for f in ./postinst ./prerm ./postrm ./conffiles; do
    grep -qx "$f" <<<"$control" || die "$p has no $f"
  done
  grep -qx "/etc/kgr/$role.json" <<<"$(dpkg-deb --ctrl-tarfile "${deb[$p]}" | tar -xO ./conffiles)" ||
    die "$p: /etc/kgr/$role.json is not a conffile"
done
expect_file kgr-ks /usr/share/kgr/broker-config/render.sh
expect_file kgr-ac /usr/bin/kgr-ac
expect_file kgr-ac /etc/kgr/ac.json
expect_file kgr-ac /usr/share/kgr/provisioning/make-ca.sh
say "contents, dependencies (shlibdeps) and conffiles as expected"

# 3. Install.
dpkg -i "${deb[@]}" >"$out/dpkg.log" 2>&1 || { cat "$out/dpkg.log"; die "dpkg -i failed"; }
for p in "${pkgs[@]}"; do installed "$p" || die "$p not installed"; done
for u in kgr-ks kgr-node; do
  id "$u" >/dev/null 2>&1 || die "postinst made no user $u"
  grep -qw tss <<<"$(id -nG "$u")" || die "$u is not in group tss"
  [[ $(stat -c '%U %a' "/var/lib/$u") == "$u 700" ]] ||
    die "/var/lib/$u is $(stat -c '%U %a' "/var/lib/$u"), not $u 700"
done
say "installed; users kgr-ks and kgr-node (group tss), /var/lib/kgr-* 0700"

# 4. The units. systemd-analyze verify needs no running systemd (PID 1 here
#    may be anything); it does check that ExecStart's binary exists, hence
#    after the install.
for u in kgr-ks kgr-node; do
  if ! systemd-analyze verify "/lib/systemd/system/$u.service" >"$out/verify-$u.log" 2>&1; then
    cat "$out/verify-$u.log"
    die "systemd-analyze verify $u.service"
  fi
  [[ ! -s $out/verify-$u.log ]] || { cat "$out/verify-$u.log"; die "systemd-analyze verify $u.service warned"; }
done
say "systemd-analyze verify: kgr-ks.service and kgr-node.service clean"

# 5. The binary's architecture.
case $arch in
  amd64) want=x86-64 ;;
  arm64) want=aarch64 ;;
  *) want=$arch ;;
esac
info=$(file -L /usr/bin/kgr-node)
grep -q "ELF 64-bit.*$want" <<<"$info" || die "file: $info (wanted $want)"
say "file /usr/bin/kgr-node: ${info#*: }"

# 6. The example configs parse (their values pass every check; what fails
#    next is the missing state, TPM or broker, not the config).
parse_ok() {  # parse_ok PROGRAM ARGS...
  local err rc=0
  err=$("$@" 2>&1 >/dev/null) || rc=$?
  [[ $rc -ne 2 ]] || die "$* : config refused: $err"
}
scratch=$out/state
mkdir -p "$scratch"
parse_ok /usr/bin/kgr-ks status --config /etc/kgr/ks.json --state-dir "$scratch/ks" --tcti none
parse_ok /usr/bin/kgr-node status --config /etc/kgr/node.json --state-dir "$scratch/node" --tcti none
parse_ok /usr/bin/kgr-ac list --config /etc/kgr/ac.json --timeout-ms 200
say "example configs /etc/kgr/{ks,node,ac}.json accepted"

# 7. The demo against the installed binaries.
demo=$(KGR_SKIP_SETUP=1 KGR_BIN_DIR=/usr/bin bash "$src/scripts/demo.sh" 2>&1) ||
  { echo "$demo"; die "demo against /usr/bin failed"; }
grep -q '^demo: OK ' <<<"$demo" || { echo "$demo"; die "demo did not end with OK"; }
say "$(grep '^demo: OK ' <<<"$demo") (installed binaries)"

# 8. Remove and purge: nothing the packages installed is left.
files=$(for p in "${pkgs[@]}"; do dpkg -L "$p"; done | sort -u)
dpkg --purge "${pkgs[@]}" >"$out/purge.log" 2>&1 || { cat "$out/purge.log"; die "dpkg --purge failed"; }
for p in "${pkgs[@]}"; do
  ! installed "$p" || die "$p still installed after purge"
  [[ $(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true) != *config-files* ]] ||
    die "$p left config files"
done
left=$(while read -r f; do [[ -f $f ]] && echo "$f"; done <<<"$files" || true)
[[ -z $left ]] || die "files left after purge: $left"
say "purged; no file of the packages left"
trap - EXIT
rm -rf "$out"
echo "test-packages: OK packages=${#pkgs[@]} units=2 demo=installed"
