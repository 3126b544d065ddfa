#!/usr/bin/env bash
# Bad input, with the real executables: every config value and flag of the
# wrong type or range is refused with exit 2 and exactly one stderr line
# naming the key (no usage text, no tpm2-tss log lines); a credential file
# cut short at any offset or with any byte flipped is refused by `kgr-node
# init` before it writes anything (state dir absent, the swtpm's NV indices
# and persistent handles unchanged); a `kgr-ac authorize` or `kgr-ac peers`
# that fails on its output leaves the KS's node list as it was; a signed
# peer list that is cut short or edited is refused.
# BAD_INPUT_STRIDE=N tests every Nth offset (default 13, a prime so the
# offsets walk across the 64-character PEM lines; about 800 kgr-node runs,
# where stride 5 made 2,058 and 210-235 s, the longest test of CI; 1: all of
# them, ~8 min). The last 80 bytes are tried at every offset; the unit tests
# in libkgr/ac/credentials_test.cc try every offset in-process.
set -euo pipefail
src=${KGR_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
unset TSS2_LOG  # the executables must keep tpm2-tss quiet by themselves
export KED_TRACE=1
source "$src/tests/e2e/ked.bash"
stride=${BAD_INPUT_STRIDE:-13}

failures=0 section_failures=0
bad() {  # records a failure; the first 5 of each section are printed
  failures=$((failures + 1)) section_failures=$((section_failures + 1))
  ((section_failures <= 5)) && printf 'BAD: %s\n' "$*" >&2
  return 0
}
ok() {  # ok MESSAGE: ends a section
  if ((section_failures == 0)); then say "ok: $*"; else
    printf 'FAILED (%d cases): %s\n' "$section_failures" "$*" >&2
  fi
  section_failures=0
}

# refused WHAT NAME CMD...: CMD must exit 2 with one stderr line that names
# NAME and carries no usage text.
refused() {
  local what=$1 name=$2 rc err
  shift 2
  set +e
  err=$("$@" 2>&1 >/dev/null </dev/null); rc=$?
  set -e
  if [[ $rc != 2 ]]; then
    bad "$what: exit $rc, expected 2: ${err:0:300}"
  elif [[ -z $err || $err == *$'\n'* ]]; then
    bad "$what: expected one stderr line, got $(printf '%s\n' "$err" | wc -l): ${err:0:300}"
  elif [[ $err != *"$name"* ]]; then
    bad "$what: the line does not name $name: ${err:0:300}"
  elif [[ $err == *usage* || ${#err} -gt 400 ]]; then
    bad "$what: usage text or an overlong line: ${err:0:300}"
  fi
}

ked_init
dead_port=$(free_port)
dead_tcti="swtpm:host=127.0.0.1,port=$dead_port"
unused=$KED_DIR/unused

# --- 1. Config values of the wrong type or range -------------------------
# config_refused EXE KEY JSON [args]: EXE --config FILE with {KEY: JSON}.
cfg_n=0
config_refused() {
  local exe=$1 key=$2 json=$3 bin cmd
  shift 3
  cfg_n=$((cfg_n + 1))
  local file=$KED_DIR/cfg-$cfg_n.json
  case $exe in
    ks) bin=$KS_BIN cmd=(status --state-dir "$unused" --tcti "$dead_tcti") ;;
    ac) bin=$AC_BIN cmd=(list --broker "127.0.0.1:$dead_port") ;;
    node) bin=$NODE_BIN cmd=(status --state-dir "$unused" --tcti "$dead_tcti") ;;
  esac
  if [[ $key == *.* ]]; then  # a nested key, "a.b"
    printf '{"%s": {"%s": %s}}\n' "${key%%.*}" "${key#*.}" "$json" >"$file"
  else
    printf '{"%s": %s}\n' "$key" "$json" >"$file"
  fi
  refused "kgr-$exe config $key=${json:0:40}" "\"$key" \
    "$bin" "${cmd[@]}" --config "$file" "$@"
  [[ ! -e $unused ]] || { bad "kgr-$exe config $key=${json:0:40} created $unused"; rm -rf "$unused"; }
}

for v in 1e30 18446744073709551616 2.5 -1 0 3600001 '"100"' true null '[]'; do
  config_refused node timeout_ms "$v"
  config_refused ac timeout_ms "$v"
done
for exe in ks ac node; do
  for v in '"verbose"' 3 '""' true; do config_refused "$exe" log_level "$v"; done
  for v in '"qt"' 1; do config_refused "$exe" mqtt_client "$v"; done
  config_refused "$exe" no_such_key 1
  for v in '"localhost"' '"127.0.0.1:0"' '"127.0.0.1:65536"' '"127.0.0.1:88x"' \
           '":8883"' 8883 '"127.0.0.1:8883 "'; do
    config_refused "$exe" broker "$v"
  done
done
big=$(head -c 1048576 /dev/zero | tr '\0' 'a')
printf '{"broker": "%s:8883"}\n' "$big" >"$KED_DIR/big.json"
refused "kgr-ks a 1 MiB broker" '"broker"' "$KS_BIN" status --config "$KED_DIR/big.json" \
  --state-dir "$unused" --tcti "$dead_tcti"
refused "kgr-ac a 1 MiB broker" '"broker"' "$AC_BIN" list --config "$KED_DIR/big.json"
refused "kgr-node a 1 MiB broker" '"broker"' "$NODE_BIN" status --config "$KED_DIR/big.json" \
  --state-dir "$unused" --tcti "$dead_tcti"
for exe in ks node; do
  for v in '"true"' 1 0 '"yes"' null; do config_refused "$exe" pcr_policy "$v"; done
  config_refused "$exe" state_dir 5
  config_refused "$exe" journal_prealloc_kb 4097
  config_refused "$exe" journal_prealloc_kb 1.5
done
for exe in ks ac; do
  for v in '"a/+"' '"#"' '"kgr/"' '"a b"' 7; do config_refused "$exe" topic_prefix "$v"; done
  for v in '"x"' 1 '[]'; do config_refused "$exe" tls "$v"; done
  config_refused "$exe" tls.ca_file 1
  config_refused "$exe" tls.cafile '"x"'
done
for v in 1e30 2.5 -1 '"60000"' 0; do config_refused ks gen_key_ttl_ms "$v"; done
for v in 2.5 -3 '"1"'; do config_refused ks node_frames_per_s "$v"; done
config_refused ks max_pending 0
config_refused ks max_pending 1e3
for v in 0 -1 1e3 2.5 36501 '"365"'; do config_refused ac cert_days "$v"; done
config_refused ac ks_cert_file false
for v in 2.5 -1 '"5"' 1e30; do
  config_refused node policy.max_frames "$v"
  config_refused node policy.max_age_s "$v"
done
config_refused node policy.pairs '{"zz": {"max_frames": 1}}'
config_refused node policy.pairs '{"00000001": {"max_frames": 2.5}}'
config_refused node policy.pairs '{"00000001": {"max_fraems": 1}}'
config_refused node policy.nonsense 1
ok "$cfg_n bad config values refused, each with one line naming its key"

# --- 2. Flags of the wrong type or range ---------------------------------
flag_refused() {  # flag_refused EXE FLAG VALUE
  local exe=$1 flag=$2 value=$3 bin cmd
  case $exe in
    ks) bin=$KS_BIN cmd=(status --state-dir "$unused" --tcti "$dead_tcti") ;;
    ac) bin=$AC_BIN cmd=(list --broker "127.0.0.1:$dead_port") ;;
    node) bin=$NODE_BIN cmd=(status --state-dir "$unused" --tcti "$dead_tcti") ;;
  esac
  refused "kgr-$exe --$flag '${value:0:40}'" "--$flag" "$bin" "${cmd[@]}" "--$flag" "$value"
  [[ ! -e $unused ]] || { bad "kgr-$exe --$flag ${value:0:40} created $unused"; rm -rf "$unused"; }
}
for v in 10x 1e3 -1 0 2.5 '' ' 5' +5 99999999999999999999999 18446744073709551616; do
  flag_refused ac timeout-ms "$v"
  flag_refused node timeout-ms "$v"
done
for v in -1 0 x 1e2 36501; do flag_refused ac cert-days "$v"; done
for exe in ks ac node; do
  flag_refused "$exe" log-level verbose
  flag_refused "$exe" mqtt-client qt
  flag_refused "$exe" broker localhost
  flag_refused "$exe" broker "127.0.0.1:0"
  flag_refused "$exe" broker "${big:0:100000}:1"
done
for exe in ks ac; do
  for v in 'a/#' '+' 'kgr/' ''; do flag_refused "$exe" topic-prefix "$v"; done
done
for v in 1.5 -1 x; do
  flag_refused ks node-frames-per-s "$v"
  flag_refused ks gen-key-ttl-ms "$v"
done
flag_refused ks journal-prealloc-kb 4097
flag_refused node journal-prealloc-kb 4097
flag_refused node key-max-frames -1
flag_refused node key-max-age-s 1e3
refused "kgr-ac revoke --node 123" "--node" "$AC_BIN" revoke --node 123 --broker "127.0.0.1:$dead_port"
refused "kgr-ac peers --peers a,b" "--peers" "$AC_BIN" peers --node 00000001 --peers a,b --broker "127.0.0.1:$dead_port"
refused "kgr-node renew --peer xyz" "--peer" "$NODE_BIN" renew --peer xyz --state-dir "$unused" --tcti "$dead_tcti"
refused "kgr-ac --timeout-ms twice" "--timeout-ms" "$AC_BIN" list --timeout-ms 5 --timeout-ms 6
refused "kgr-node --pcr-policy=yes" "--pcr-policy" "$NODE_BIN" status --pcr-policy=yes --state-dir "$unused"
# Usage text only for --help; an unknown command or flag gets one line.
refused "kgr-ac unknown command" "frobnicate" "$AC_BIN" frobnicate
refused "kgr-node unknown flag" "--frobnicate" "$NODE_BIN" status --frobnicate 1
refused "kgr-ks no command" "command" "$KS_BIN"
"$AC_BIN" --help | grep -q "^usage: kgr-ac" || bad "kgr-ac --help prints no usage"
ok "bad flags refused with one line naming the flag; usage only for --help"

# --- 3. TPM errors: one kgr line, no tpm2-tss log lines -----------------
set +e
err=$("$NODE_BIN" status --state-dir "$unused" --tcti "$dead_tcti" 2>&1 >/dev/null); rc=$?
set -e
[[ $rc != 0 && -n $err && $err != *$'\n'* && $err == kgr-node* ]] ||
  bad "an unreachable TPM: expected one kgr-node line, got: $err"
rm -rf "$unused"
ok "an unreachable TPM is one line: $err"

# --- 4. Credential files cut short or edited ----------------------------
ked_broker_up
ked_ks_up
ac_list() { ac list --json 2>/dev/null | tr -d ' \n'; }
ac authorize --out "$KED_DIR/good.cred" >/dev/null 2>>"$KED_DIR/logs/ac.log" ||
  die "kgr-ac authorize failed: $(tail -3 "$KED_DIR/logs/ac.log")"
swtpm_up victim
tcti=${NODE_TCTI[victim]}
tpm_view() {
  tpm2_nvreadpublic -T "$tcti" 2>&1
  tpm2_getcap -T "$tcti" handles-persistent 2>&1
}
nv_before=$(tpm_view)
victim=$KED_DIR/node-victim
mkdir -p "$KED_DIR/variants"
/usr/bin/python3 - "$KED_DIR/good.cred" "$KED_DIR/variants" "$stride" <<'PY'
import os, sys
data = open(sys.argv[1], "rb").read()
out, stride = sys.argv[2], int(sys.argv[3])
n = 0
def put(name, b):
    global n
    open(os.path.join(out, name), "wb").write(b)
    n += 1
tail = set(range(max(0, len(data) - 80), len(data)))
for i in sorted(set(range(0, len(data), stride)) | tail):
    put("cut-%05d" % i, data[:i])
for i in sorted(set(range(0, len(data), stride * 2)) | tail):
    b = bytearray(data); b[i] ^= 0x01; put("flip-%05d" % i, bytes(b))
    c = bytearray(data); c[i] ^= 0x20; put("case-%05d" % i, bytes(c))
put("appended", data + b"n_id 00000001\n")
put("doubled", data + data)
put("crlf", data.replace(b"\n", b"\r\n"))
PY
variants=0
for f in "$KED_DIR"/variants/*; do
  variants=$((variants + 1))
  [[ $(cmp -s "$f" "$KED_DIR/good.cred"; echo $?) == 0 ]] && continue
  set +e
  err=$("$NODE_BIN" init --credentials "$f" --state-dir "$victim" --tcti "$tcti" 2>&1 >/dev/null); rc=$?
  set -e
  if [[ $rc == 0 ]]; then
    bad "credential variant $(basename "$f") accepted"
  elif [[ -z $err || $err == *$'\n'* ]]; then
    bad "credential variant $(basename "$f"): not one line: ${err:0:300}"
  fi
  [[ ! -e $victim ]] || { bad "credential variant $(basename "$f") left $victim"; rm -rf "$victim"; }
done
[[ $(tpm_view) == "$nv_before" ]] || bad "the TPM's NV or persistent handles changed during the refused inits"
ok "$variants truncated or edited credential files refused; state dir absent, TPM unchanged"
"$NODE_BIN" init --credentials "$KED_DIR/good.cred" --state-dir "$victim" --tcti "$tcti" >/dev/null 2>&1 ||
  bad "the intact credential file was refused"
[[ $(tpm_view) != "$nv_before" ]] || bad "the intact credential file wrote nothing to the TPM"
ok "the intact credential file initializes the node"

# --- 5. A failed kgr-ac command leaves the KS as it was -----------------
list_before=$(ac_list)
[[ -n $list_before ]] || die "kgr-ac list gave nothing"
ac_custom() {  # like ac, but the flags given replace the KED's
  local -A over=()
  local a i base=(--broker "$BROKER" --ca "$KED_DIR/pki/ca.crt"
    --cert "$KED_DIR/pki/ac.crt" --key "$KED_DIR/pki/ac.key"
    --ks-cert "$KED_DIR/pki/ks.crt" --ca-key "$KED_DIR/pki/ca.key"
    --issued-dir "$KED_DIR/pki/issued" --crl "$KED_DIR/pki/crl.pem") rest=()
  for a in "$@"; do [[ $a == --* ]] && over[$a]=1; done
  for ((i = 0; i < ${#base[@]}; i += 2)); do
    [[ -n ${over[${base[i]}]:-} ]] || rest+=("${base[i]}" "${base[i + 1]}")
  done
  "$AC_BIN" "$@" "${rest[@]}"
}
ac_refused() {  # ac_refused WHAT CMD...
  local what=$1 rc err
  shift
  set +e
  err=$(ac_custom "$@" 2>&1 >/dev/null); rc=$?
  set -e
  [[ $rc != 0 ]] || bad "kgr-ac $what: succeeded"
  [[ -n $err && $err != *$'\n'* ]] || bad "kgr-ac $what: not one line: ${err:0:300}"
  [[ $(ac_list) == "$list_before" ]] || bad "kgr-ac $what: the KS's node list changed"
}
ac_refused "authorize --out in a missing directory" authorize --out "$KED_DIR/missing/dir/x.cred"
ac_refused "authorize --out a directory" authorize --out "$KED_DIR/variants"
touch "$KED_DIR/a-file"
ac_refused "authorize --issued-dir a file" authorize --out "$KED_DIR/x.cred" --issued-dir "$KED_DIR/a-file"
ac_refused "authorize --ca-key not the CA's" authorize --out "$KED_DIR/x.cred" --ca-key "$KED_DIR/pki/ac.key"
ac_refused "authorize --peers bad" authorize --out "$KED_DIR/x.cred" --peers 0000000g
[[ ! -e $KED_DIR/x.cred ]] || bad "a failed authorize wrote $KED_DIR/x.cred"
good_id=$(ac_list | grep -o '"n_id":"[0-9a-f]*"' | head -1 | cut -d'"' -f4)
ac_refused "peers --out in a missing directory" peers --node "$good_id" --peers 00000001 \
  --out "$KED_DIR/missing/dir/x.peers"
leftovers=$(find "$KED_DIR" -maxdepth 1 -name '*.tmp*' | wc -l)
[[ $leftovers == 0 ]] || bad "failed kgr-ac commands left $leftovers temporary files"
ok "failed kgr-ac authorize/peers left the KS's node list and the output directory as they were"

# --- 6. Signed peer lists ------------------------------------------------
out=$(ac authorize --out "$KED_DIR/second.cred" --peers "$good_id" 2>>"$KED_DIR/logs/ac.log") ||
  die "kgr-ac authorize (second) failed"
second_id=$(grep -o 'node [0-9a-f]\{8\}' <<<"$out" | cut -d' ' -f2)
ac peers --node "$good_id" --peers "$second_id" --out "$KED_DIR/good.peers" >/dev/null 2>>"$KED_DIR/logs/ac.log" ||
  die "kgr-ac peers --out failed"
size=$(stat -c %s "$KED_DIR/good.peers")
cuts=0
for ((i = 0; i < size; i += stride * 3)); do
  cuts=$((cuts + 1))
  head -c "$i" "$KED_DIR/good.peers" >"$KED_DIR/cut.peers"
  set +e
  err=$("$NODE_BIN" peers --file "$KED_DIR/cut.peers" --state-dir "$victim" --tcti "$tcti" 2>&1 >/dev/null); rc=$?
  set -e
  [[ $rc != 0 && -n $err && $err != *$'\n'* ]] || bad "peer list cut at $i: rc=$rc ${err:0:200}"
done
sed "s/$second_id/$good_id/" "$KED_DIR/good.peers" >"$KED_DIR/edited.peers"
set +e
err=$("$NODE_BIN" peers --file "$KED_DIR/edited.peers" --state-dir "$victim" --tcti "$tcti" 2>&1 >/dev/null); rc=$?
set -e
[[ $rc != 0 && -n $err && $err != *$'\n'* ]] || bad "edited peer list: rc=$rc ${err:0:200}"
"$NODE_BIN" peers --file "$KED_DIR/good.peers" --state-dir "$victim" --tcti "$tcti" >/dev/null 2>&1 ||
  bad "the intact peer list was refused"
ok "a signed peer list cut short ($cuts offsets) or edited is refused; the intact one loads"

if ((failures > 0)); then
  echo "bad_input: $failures FAILURES" >&2
  exit 1
fi
echo "bad_input: OK"
