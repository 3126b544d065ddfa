# Shared by scripts/demo.sh and tests/e2e/*.sh: brings up a whole KED on
# loopback (CA, TLS Mosquitto, one swtpm per party, kgr-ks, nodes) in a work
# directory, and tears down everything it started (by PID) on exit.
#
# Use: source tests/e2e/ked.bash; ked_init; ked_broker_up; ked_ks_up;
#      ked_node_add NAME [PEER_NAME...]; ...; (trap runs ked_down)
# Needs KGR_BUILD (build dir with the executables), or KGR_BIN_DIR: one
# directory with kgr-ks, kgr-ac and kgr-node (e.g. /usr/bin: the installed
# packages, scripts/test-packages.sh).

set -euo pipefail
KGR_SRC=${KGR_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
KGR_BUILD=${KGR_BINARY_DIR:-$KGR_SRC/build}
KS_BIN=${KGR_BIN_DIR:+$KGR_BIN_DIR/kgr-ks}
AC_BIN=${KGR_BIN_DIR:+$KGR_BIN_DIR/kgr-ac}
NODE_BIN=${KGR_BIN_DIR:+$KGR_BIN_DIR/kgr-node}
: "${KS_BIN:=$KGR_BUILD/ks-node/kgr-ks}" "${AC_BIN:=$KGR_BUILD/ac-node/kgr-ac}"
: "${NODE_BIN:=$KGR_BUILD/n-node/kgr-node}"
declare -a KED_PIDS=()
declare -A NODE_ID=() NODE_TCTI=()
# NODE_ARGS[NAME]: extra flags for that node's daemon (e.g. --mqtt-client paho).
declare -A NODE_ARGS=()
# KGR_E2E_QOS=0|1: the MQTT QoS every kgr-ks, kgr-ac and kgr-node of the KED
# uses (--mqtt-qos); unset: the executables' default. ctest runs the fault
# tests a second time with 0 (e2e_qos0_*).
KED_QOS_ARGS=()
# The AC's issuing CA and CRL (ked_init; KED_INTERMEDIATE=1 switches to an
# intermediate and a CRL hook). With KED_INTERMEDIATE=1, KED_KS_CA_ARGS give
# kgr-ks run its node CA (renewals), its CRL and the same hook.
KED_AC_CA_ARGS=() KED_KS_CA_ARGS=()
case ${KGR_E2E_QOS:-} in
  "") ;;
  0 | 1) KED_QOS_ARGS=(--mqtt-qos "$KGR_E2E_QOS") ;;
  *) printf 'FAIL: KGR_E2E_QOS must be 0 or 1 (got %s)\n' "$KGR_E2E_QOS" >&2; exit 1 ;;
esac
: "${KED_TRACE:=1}"

say() { [[ $KED_TRACE == 1 ]] && printf '%s\n' "$*" || true; }
die() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }

free_port() {  # free_port [N consecutive]
  /usr/bin/python3 - "${1:-1}" <<'PY'
import socket, sys
n = int(sys.argv[1])
for _ in range(200):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close()
    ok = True
    for i in range(1, n):
        t = socket.socket()
        try: t.bind(("127.0.0.1", p + i))
        except OSError: ok = False
        t.close()
    if ok and p + n < 65536:
        print(p); break
PY
}

wait_port() {  # wait_port PORT [tries]
  local port=$1 tries=${2:-250}
  for ((i = 0; i < tries; i++)); do
    (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null && return 0
    sleep 0.02
  done
  return 1
}

ked_down() {
  local rc=$? pid log
  # A failed test shows the end of every log, so a CI failure can be read.
  if ((rc != 0)) && [[ -n ${KED_DIR:-} && -d $KED_DIR/logs ]]; then
    for log in "$KED_DIR"/logs/*; do
      [[ -s $log ]] || continue
      printf '==== %s (last lines)\n' "${log##*/}" >&2
      tail -n 15 "$log" >&2
    done
  fi
  for ((i = ${#KED_PIDS[@]} - 1; i >= 0; i--)); do
    pid=${KED_PIDS[$i]}
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${KED_PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  KED_PIDS=()
  if [[ ${KED_KEEP:-0} != 1 && -n ${KED_DIR:-} ]]; then rm -rf "$KED_DIR"; fi
}

ked_init() {
  [[ -x $KS_BIN && -x $AC_BIN && -x $NODE_BIN ]] ||
    die "build the executables first (looked in ${KGR_BIN_DIR:-$KGR_BUILD})"
  KED_DIR=$(mktemp -d /tmp/kgr-ked-XXXXXX)
  chmod 0755 "$KED_DIR"   # the broker (user mosquitto) reads its files here
  trap ked_down EXIT
  mkdir -p "$KED_DIR/pki" "$KED_DIR/logs"
  chmod 0755 "$KED_DIR/pki" "$KED_DIR/logs"
  bash "$KGR_SRC/provisioning/make-ca.sh" "$KED_DIR/pki" >/dev/null
  chmod 0644 "$KED_DIR/pki/ca.crt"
  for cn in ks ac; do
    bash "$KGR_SRC/provisioning/issue-cert.sh" "$KED_DIR/pki" "$cn" >/dev/null
  done
  bash "$KGR_SRC/provisioning/issue-cert.sh" "$KED_DIR/pki" broker broker >/dev/null
  chmod 0644 "$KED_DIR/pki/broker.crt"
  if [[ ${KED_INTERMEDIATE:-0} == 1 ]]; then
    # Root (its key unused from here on) + issuing intermediates: the AC's
    # for authorize and its CRL, the KS's for renewals. The broker's CRL
    # file holds one CRL per issuer (broker-config/reload-crl.sh).
    local int
    for int in kgr-ac-ca kgr-ks-ca; do
      bash "$KGR_SRC/provisioning/make-intermediate.sh" "$KED_DIR/pki" \
        "$KED_DIR/pki/int" "$int" >/dev/null
    done
    chmod 0755 "$KED_DIR/pki/int"
    cat "$KED_DIR/pki/ca.crl" "$KED_DIR/pki/int/kgr-ac-ca.crl" \
      "$KED_DIR/pki/int/kgr-ks-ca.crl" >"$KED_DIR/pki/crl.pem"
    chmod 0644 "$KED_DIR/pki/crl.pem"
    local hook="bash $KGR_SRC/broker-config/reload-crl.sh --out $KED_DIR/pki/crl.pem \
--pid-file $KED_DIR/broker/pid $KED_DIR/pki/ca.crl $KED_DIR/pki/int/kgr-ac-ca.crl \
$KED_DIR/pki/int/kgr-ks-ca.crl"
    KED_AC_CA_ARGS=(--issuing-ca "$KED_DIR/pki/int/kgr-ac-ca.crt"
      --ca-key "$KED_DIR/pki/int/kgr-ac-ca.key" --crl "$KED_DIR/pki/int/kgr-ac-ca.crl"
      --crl-hook "$hook")
    KED_KS_CA_ARGS=(--node-ca "$KED_DIR/pki/int/kgr-ks-ca.crt"
      --node-ca-key "$KED_DIR/pki/int/kgr-ks-ca.key"
      --node-crl "$KED_DIR/pki/int/kgr-ks-ca.crl" --node-crl-hook "$hook")
    say "ked: root CA, intermediates kgr-ac-ca and kgr-ks-ca, certificates for ks, ac, broker in $KED_DIR/pki"
    return 0
  fi
  KED_AC_CA_ARGS=(--ca-key "$KED_DIR/pki/ca.key" --crl "$KED_DIR/pki/crl.pem")
  "$AC_BIN" crl --ca "$KED_DIR/pki/ca.crt" --ca-key "$KED_DIR/pki/ca.key" \
    --crl "$KED_DIR/pki/crl.pem" >/dev/null
  say "ked: CA and certificates for ks, ac, broker in $KED_DIR/pki"
}

ked_broker_up() {
  BROKER_PORT=$(free_port)
  mkdir -p "$KED_DIR/broker"
  chmod 0755 "$KED_DIR/broker"
  bash "$KGR_SRC/broker-config/render.sh" --out-dir "$KED_DIR/broker" \
    --port "$BROKER_PORT" --cafile "$KED_DIR/pki/ca.crt" \
    --certfile "$KED_DIR/pki/broker.crt" --keyfile "$KED_DIR/pki/broker.key" \
    --crlfile "$KED_DIR/pki/crl.pem" \
    --log-file "$KED_DIR/broker/mosquitto.log" >/dev/null
  if [[ ${KED_OBSERVER:-0} == 1 ]]; then
    # Tests only: identity n00000000 (N_ID 0 is never assigned) may read
    # everything, to watch what crosses the broker.
    bash "$KGR_SRC/provisioning/issue-cert.sh" "$KED_DIR/pki" n00000000 node >/dev/null
    printf '\nuser n00000000\ntopic read kgr/#\n' >>"$KED_DIR/broker/acl"
  fi
  touch "$KED_DIR/broker/mosquitto.log"
  chmod 0666 "$KED_DIR/broker/mosquitto.log"
  broker_start
  BROKER=127.0.0.1:$BROKER_PORT
  say "ked: TLS Mosquitto on $BROKER (pid $BROKER_PID)"
}

# swtpm_up NAME: a swtpm with its own state dir; sets NODE_TCTI[NAME].
swtpm_up() {
  local name=$1 port
  port=$(free_port 2)
  mkdir -p "$KED_DIR/tpm-$name"
  swtpm socket --tpm2 --tpmstate dir="$KED_DIR/tpm-$name" \
    --server type=tcp,port="$port",bindaddr=127.0.0.1 \
    --ctrl type=tcp,port=$((port + 1)),bindaddr=127.0.0.1 \
    --flags not-need-init,startup-clear >>"$KED_DIR/logs/swtpm-$name.log" 2>&1 &
  KED_PIDS+=("$!")
  wait_port "$port" || die "swtpm for $name did not start"
  NODE_TCTI[$name]="swtpm:host=127.0.0.1,port=$port"
}

ks_args() {
  echo --state-dir "$KED_DIR/ks" --tcti "${NODE_TCTI[ks]}" --broker "$BROKER" \
    --ca "$KED_DIR/pki/ca.crt" --cert "$KED_DIR/pki/ks.crt" --key "$KED_DIR/pki/ks.key" \
    "${KED_QOS_ARGS[@]}"
}

ac() {  # ac COMMAND [args]: runs kgr-ac with the KED's settings
  "$AC_BIN" "$@" --broker "$BROKER" --ca "$KED_DIR/pki/ca.crt" \
    --cert "$KED_DIR/pki/ac.crt" --key "$KED_DIR/pki/ac.key" \
    --ks-cert "$KED_DIR/pki/ks.crt" --issued-dir "$KED_DIR/pki/issued" \
    "${KED_AC_CA_ARGS[@]}" "${KED_QOS_ARGS[@]}"
}

ked_ks_up() {
  swtpm_up ks
  # shellcheck disable=SC2046
  "$KS_BIN" init $(ks_args) >>"$KED_DIR/logs/ks.log" 2>&1 || {
    cat "$KED_DIR/logs/ks.log" >&2; die "kgr-ks init failed"; }
  ks_start
}

# ks_start: starts the kgr-ks daemon (again) and waits until it serves.
ks_start() {
  local mark
  mark=$(grep -c "kgr-ks ready" "$KED_DIR/logs/ks.log" || true)
  # shellcheck disable=SC2046
  "$KS_BIN" run $(ks_args) "${KED_KS_CA_ARGS[@]}" ${KS_EXTRA_ARGS:-} >>"$KED_DIR/logs/ks.log" 2>&1 &
  KS_PID=$!
  KED_PIDS+=("$KS_PID")
  for _ in $(seq 200); do
    [[ $(grep -c "kgr-ks ready" "$KED_DIR/logs/ks.log") -gt $mark ]] && break
    kill -0 "$KS_PID" 2>/dev/null || { cat "$KED_DIR/logs/ks.log" >&2; die "kgr-ks exited"; }
    sleep 0.05
  done
  [[ $(grep -c "kgr-ks ready" "$KED_DIR/logs/ks.log") -gt $mark ]] || die "kgr-ks not ready"
  say "ked: key server $(grep -o 'n_id=[0-9a-f]*' "$KED_DIR/logs/ks.log" | head -1) serving (pid $KS_PID)"
}

node() {  # node NAME COMMAND [args]
  local name=$1; shift
  "$NODE_BIN" "$1" "${@:2}" --state-dir "$KED_DIR/node-$name" \
    --tcti "${NODE_TCTI[$name]}" "${KED_QOS_ARGS[@]}"
}

# ked_node_add NAME [PEER_NAME...]: authorize (AC), init, start the daemon
# (not with KED_NO_START=1: node_start NAME later).
ked_node_add() {
  local name=$1; shift
  local peers=() p
  for p in "$@"; do peers+=("${NODE_ID[$p]}"); done
  local peer_flag=()
  ((${#peers[@]})) && peer_flag=(--peers "$(IFS=,; echo "${peers[*]}")")
  local out
  out=$(ac authorize --out "$KED_DIR/$name.cred" "${peer_flag[@]}" 2>>"$KED_DIR/logs/ac.log") ||
    die "kgr-ac authorize $name failed: $(tail -3 "$KED_DIR/logs/ac.log")"
  NODE_ID[$name]=$(grep -o 'node [0-9a-f]\{8\}' <<<"$out" | cut -d' ' -f2)
  say "ac: authorized $name as ${NODE_ID[$name]}${peers:+ (may pair with ${peers[*]})}"
  swtpm_up "$name"
  node "$name" init --credentials "$KED_DIR/$name.cred" >>"$KED_DIR/logs/$name.log" 2>&1 ||
    { cat "$KED_DIR/logs/$name.log" >&2; die "kgr-node init $name failed"; }
  rm -f "$KED_DIR/$name.cred"
  if [[ ${KED_NO_START:-0} == 1 ]]; then
    say "node $name (${NODE_ID[$name]}): initialized from its credential file"
    return 0
  fi
  node_start "$name"
  say "node $name (${NODE_ID[$name]}): initialized from its credential file, daemon running"
}

# mqtt_as CN CMD [args]: mosquitto_pub/_sub over TLS as the identity CN
# (exec'd: in the background, $! is the client itself).
mqtt_as() {
  local cn=$1 cmd=$2; shift 2
  (exec "$cmd" -h 127.0.0.1 -p "$BROKER_PORT" --cafile "$KED_DIR/pki/ca.crt" \
    --cert "$KED_DIR/pki/$cn.crt" --key "$KED_DIR/pki/$cn.key" -i "$cn-$RANDOM" "$@")
}

# ked_observe FILTER: (tests, KED_OBSERVER=1) the observer identity
# records every message matching FILTER as "topic hex" lines in
# $KED_DIR/observed from now on.
# ked_try_connect CN CERT KEY: a probe MQTT connection with that client
# certificate; prints mosquitto_sub's exit code (27: connected, then timed
# out waiting for a message; anything else but 0: refused).
ked_try_connect() {
  set +e
  timeout 5 mosquitto_sub -h 127.0.0.1 -p "$BROKER_PORT" --cafile "$KED_DIR/pki/ca.crt" \
    --cert "$2" --key "$3" -i "$1-probe" -t "kgr/$1/probe" -C 1 -W 1 >/dev/null 2>&1
  echo $?; set -e
}

ked_observe() {
  mosquitto_sub -h 127.0.0.1 -p "$BROKER_PORT" --cafile "$KED_DIR/pki/ca.crt" \
    --cert "$KED_DIR/pki/n00000000.crt" --key "$KED_DIR/pki/n00000000.key" \
    -i observer -t "$1" -F '%t %x' >"$KED_DIR/observed" 2>&1 &
  KED_PIDS+=("$!")
}

ks_log_count() { grep -c -- "$1" "$KED_DIR/logs/ks.log" || true; }

# node_start NAME: starts (again) the node's daemon; sets NODE_PID[NAME].
declare -A NODE_PID=()
node_start() {
  local name=$1
  rm -f "$KED_DIR/node-$name/control.sock"
  # Started directly (not through a function) so that $! is kgr-node itself.
  # shellcheck disable=SC2086
  "$NODE_BIN" run --state-dir "$KED_DIR/node-$name" --tcti "${NODE_TCTI[$name]}" \
    "${KED_QOS_ARGS[@]}" ${NODE_EXTRA_ARGS:-} ${NODE_ARGS[$name]:-} >>"$KED_DIR/logs/$name.log" 2>&1 &
  KED_PIDS+=("$!")
  NODE_PID[$name]=$!
  for _ in $(seq 200); do
    [[ -S $KED_DIR/node-$name/control.sock ]] && return 0
    sleep 0.05
  done
  cat "$KED_DIR/logs/$name.log" >&2
  die "kgr-node run $name did not start"
}

# broker_restart: stops Mosquitto and starts it again on the same port.
broker_start() {
  /usr/sbin/mosquitto -c "$KED_DIR/broker/mosquitto.conf" \
    >>"$KED_DIR/logs/mosquitto.out" 2>&1 &
  BROKER_PID=$!
  KED_PIDS+=("$BROKER_PID")
  echo "$BROKER_PID" >"$KED_DIR/broker/pid"   # for the CRL hook
  wait_port "$BROKER_PORT" || die "mosquitto did not start"
}

# ked_pair A B: nodes A and B (B allowed with A) registered, peer lists
# loaded, and a first session key between them.
ked_pair() {
  local a=$1 b=$2
  ked_node_add "$a"
  ked_node_add "$b" "$a"
  wait_registered "$a"
  wait_registered "$b"
  node_peers "$a" "$b" >/dev/null
  node_peers "$b" "$a" >/dev/null
  node "$a" request-key --peer "${NODE_ID[$b]}" >/dev/null
}

# ac_sign FILE: (tests) re-signs an edited credential file or peer list
# with the KED's AC certificate and key, as kgr-ac writes them (replaces
# its ac_cert and signature lines; docs/protocol.md section 10).
ac_sign() {
  local f=$1 hex='od -An -v -tx1'
  grep -v '^ac_cert \|^signature ' "$f" >"$f.body"
  echo "ac_cert $(openssl x509 -in "$KED_DIR/pki/ac.crt" -outform DER | $hex | tr -d ' \n')" >>"$f.body"
  { cat "$f.body"
    echo "signature $(openssl dgst -sha256 -sign "$KED_DIR/pki/ac.key" "$f.body" | $hex | tr -d ' \n')"
  } >"$f"
  rm -f "$f.body"
}

# node_peers NAME PEER_NAME...: loads into node NAME a peer list signed by
# the AC (what `kgr-ac peers --out` writes, without asking the KS).
node_peers() {
  local name=$1 f=$KED_DIR/$1.peers p
  shift
  { echo "kgr-peers 2"; echo "node ${NODE_ID[$name]}"
    for p in "$@"; do echo "peer ${NODE_ID[$p]}"; done; } >"$f"
  ac_sign "$f"
  node "$name" peers --file "$f"
}

wait_registered() {  # wait_registered NAME
  for _ in $(seq 100); do
    [[ $(node "$1" status --json 2>/dev/null) == *'"registered": true'* ]] && return 0
    sleep 0.1
  done
  die "node $1 did not register"
}

# ked_etcd_up [MEMBERS]: (issue 23) a 1- or 3-member etcd on free loopback
# ports, data under $KED_DIR/etcd, logs in $KED_DIR/logs/etcd-m<i>.log,
# stopped by PID with the rest; sets ETCD_ENDPOINTS (host:port,...).
declare -a ETCD_PIDS=() ETCD_CLIENT_PORTS=() ETCD_PEER_PORTS=()
ked_etcd_up() {
  local n=${1:-1} i p
  for ((i = 0; i < n; i++)); do
    ETCD_CLIENT_PORTS+=("$(free_port)")
    ETCD_PEER_PORTS+=("$(free_port)")
  done
  ETCD_CLUSTER=
  for ((i = 0; i < n; i++)); do
    ETCD_CLUSTER+="${ETCD_CLUSTER:+,}m$i=http://127.0.0.1:${ETCD_PEER_PORTS[$i]}"
  done
  for ((i = 0; i < n; i++)); do etcd_start "$i"; done
  ETCD_ENDPOINTS=
  for p in "${ETCD_CLIENT_PORTS[@]}"; do
    ETCD_ENDPOINTS+="${ETCD_ENDPOINTS:+,}127.0.0.1:$p"
  done
  for ((i = 0; i < n; i++)); do etcd_wait "$i"; done
  say "ked: etcd ($n member(s)) at $ETCD_ENDPOINTS"
}

# etcd_start I: starts member I (again, on its ports and data).
etcd_start() {
  local i=$1 c=http://127.0.0.1:${ETCD_CLIENT_PORTS[$1]}
  local peer=http://127.0.0.1:${ETCD_PEER_PORTS[$1]}
  /usr/bin/etcd --name "m$i" --data-dir "$KED_DIR/etcd/m$i" \
    --listen-client-urls "$c" --advertise-client-urls "$c" \
    --listen-peer-urls "$peer" --initial-advertise-peer-urls "$peer" \
    --initial-cluster "$ETCD_CLUSTER" --initial-cluster-state new \
    --heartbeat-interval 50 --election-timeout 500 --log-level warn \
    >>"$KED_DIR/logs/etcd-m$i.log" 2>&1 &
  ETCD_PIDS[$i]=$!
  KED_PIDS+=("$!")
}

# etcd_wait I: until member I answers a linearizable read (20 s).
etcd_wait() {
  local url=http://127.0.0.1:${ETCD_CLIENT_PORTS[$1]}/v3/kv/range
  for _ in $(seq 400); do
    curl -sf -m 1 -X POST "$url" -d '{"key":"eA=="}' 2>/dev/null | grep -q header && return 0
    sleep 0.05
  done
  die "etcd member $1 not healthy: $(tail -3 "$KED_DIR/logs/etcd-m$1.log")"
}

# etcd_count PREFIX: how many keys etcd holds under PREFIX.
etcd_count() {
  local from end
  from=$(printf '%s' "$1" | base64 -w0)
  end=$(printf '%s' "${1%?}$(printf '%s' "${1: -1}" | tr '/' '0')" | base64 -w0)
  curl -sf -X POST "http://127.0.0.1:${ETCD_CLIENT_PORTS[0]}/v3/kv/range" \
    -d "{\"key\":\"$from\",\"range_end\":\"$end\",\"count_only\":true}" |
    /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin).get("count", "0"))'
}
