# Shared by tests/e2e/cluster.sh and scripts/cluster-demo.sh (source after
# ked.bash and ked_init/ked_broker_up): a three-member etcd and K kgr-ks
# instances of one KS (docs/cluster.md) on loopback, stopped by PID.
#
# The instances are one KS identity: instance 0 is initialized, backed up
# offline to a recovery key, and restored onto each further instance's own
# swtpm. The domain key goes through the membership ceremony
# (docs/cluster.md): `kgr-ks cluster init` on instance 0, then each further
# instance runs `kgr-ks cluster join` and instance 0's running daemon
# approves the fingerprint it printed (ksi_join).

declare -a ETCD_CLIENT=() ETCD_PEER=() ETCD_PID=()
declare -a KSI_PID=() KSI_METRICS=()
KS_INSTANCES=0
# The shared subscription's group: unguessable, since the broker's ACL does
# not check SUBSCRIBE (docs/cluster.md, "Shared subscriptions").
KSI_GROUP=${KSI_GROUP:-ks$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')}

etcd_member_start() {  # etcd_member_start I
  local i=$1 cluster="" m
  for m in 0 1 2; do
    cluster+="${cluster:+,}m$m=http://127.0.0.1:${ETCD_PEER[$m]}"
  done
  etcd --name "m$i" --data-dir "$KED_DIR/etcd-m$i" \
    --listen-client-urls "http://127.0.0.1:${ETCD_CLIENT[$i]}" \
    --advertise-client-urls "http://127.0.0.1:${ETCD_CLIENT[$i]}" \
    --listen-peer-urls "http://127.0.0.1:${ETCD_PEER[$i]}" \
    --initial-advertise-peer-urls "http://127.0.0.1:${ETCD_PEER[$i]}" \
    --initial-cluster "$cluster" --initial-cluster-state new \
    --initial-cluster-token kgr-e2e --heartbeat-interval 50 \
    --election-timeout 500 --log-level warn >>"$KED_DIR/logs/etcd-m$i.log" 2>&1 &
  ETCD_PID[$i]=$!
  KED_PIDS+=("$!")
}

etcd_up() {  # three members; sets ETCD_URL (the --state URL)
  local i
  for i in 0 1 2; do
    ETCD_CLIENT[$i]=$(free_port)
    ETCD_PEER[$i]=$(free_port)
  done
  for i in 0 1 2; do etcd_member_start "$i"; done
  for i in 0 1 2; do wait_port "${ETCD_CLIENT[$i]}" || die "etcd m$i did not start"; done
  ETCD_URL="etcd://127.0.0.1:${ETCD_CLIENT[0]},127.0.0.1:${ETCD_CLIENT[1]},127.0.0.1:${ETCD_CLIENT[2]}/kgr/ked"
  say "etcd: three members, clients on ${ETCD_CLIENT[*]}"
}

etcd_kill() {  # etcd_kill I: SIGKILL one member
  kill -KILL "${ETCD_PID[$1]}" 2>/dev/null || true
  wait "${ETCD_PID[$1]}" 2>/dev/null || true
}

ksi_args() {  # ksi_args I: the common flags of instance I
  echo --state-dir "$KED_DIR/ks$1" --tcti "${NODE_TCTI[ks$1]}" --broker "$BROKER" \
    --ca "$KED_DIR/pki/ca.crt" --cert "$KED_DIR/pki/ks.crt" --key "$KED_DIR/pki/ks.key" \
    "${KED_QOS_ARGS[@]}"
}

ksi_start() {  # ksi_start I: kgr-ks run of instance I, waits until it serves
  local i=$1 log=$KED_DIR/logs/ks$1.log mark
  mark=$(grep -c "kgr-ks ready" "$log" 2>/dev/null || true)
  # shellcheck disable=SC2046
  [[ -n ${KSI_METRICS[$i]:-} ]] || KSI_METRICS[$i]=$(free_port)
  "$KS_BIN" run $(ksi_args "$i") --state "$ETCD_URL" --instance "$i" \
    --share-group "$KSI_GROUP" --metrics-listen "127.0.0.1:${KSI_METRICS[$i]}" \
    ${KS_EXTRA_ARGS:-} >>"$log" 2>&1 &
  KSI_PID[$i]=$!
  KED_PIDS+=("$!")
  for _ in $(seq 300); do
    [[ $(grep -c "kgr-ks ready" "$log") -gt $mark ]] && return 0
    kill -0 "${KSI_PID[$i]}" 2>/dev/null || { tail -5 "$log" >&2; die "kgr-ks instance $i exited"; }
    sleep 0.05
  done
  die "kgr-ks instance $i not ready"
}

# ksi_work I: keys instance I issued and confirmed since it started (its
# metrics endpoint), 0 if it does not answer.
ksi_work() {
  /usr/bin/python3 - "${KSI_METRICS[$1]}" <<'PY' 2>/dev/null || echo 0
import sys, urllib.request
text = urllib.request.urlopen(
    "http://127.0.0.1:%s/metrics" % sys.argv[1], timeout=2).read().decode()
total = 0
for line in text.splitlines():
    name = line.split(" ")[0]
    if name in ("kgr_ks_keys_issued_total", "kgr_ks_keys_confirmed_total"):
        total += int(float(line.split(" ")[1]))
print(total)
PY
}

ksi_kill() {  # ksi_kill I: SIGKILL instance I
  kill -KILL "${KSI_PID[$1]}" 2>/dev/null || true
  wait "${KSI_PID[$1]}" 2>/dev/null || true
}

# ksi_join M: instance M asks to join; instance 0 (running) approves.
ksi_join() {
  local m=$1 out=$KED_DIR/logs/join$1.out fp="" pid
  # shellcheck disable=SC2046
  "$KS_BIN" cluster join $(ksi_args "$m") --state "$ETCD_URL" --instance "$m" \
    --wait-s 60 >"$out" 2>&1 &
  pid=$!
  for _ in $(seq 200); do
    fp=$(sed -n 's/^join request for lane [0-9]*: fingerprint \([0-9a-f-]*\)$/\1/p' "$out")
    [[ -n $fp ]] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  [[ -n $fp ]] || { cat "$out" >&2; die "instance $m made no join request"; }
  # shellcheck disable=SC2046
  "$KS_BIN" cluster approve $(ksi_args 0) --state "$ETCD_URL" --instance 0 \
    --fingerprint "$fp" >>"$KED_DIR/logs/ks0.log" 2>&1 || die "approval of instance $m failed"
  wait "$pid" || { cat "$out" >&2; die "instance $m did not join"; }
}

# ksi_forget I: ends instance I's persistent MQTT session (client id ks-I)
# after it is stopped for good (removed from the cluster): connecting once
# with the same client id and a clean session discards it; otherwise the
# broker keeps queueing a share of the KS frames for it (docs/cluster.md).
ksi_forget() {
  timeout 5 mosquitto_sub -h 127.0.0.1 -p "$BROKER_PORT" --cafile "$KED_DIR/pki/ca.crt" \
    --cert "$KED_DIR/pki/ks.crt" --key "$KED_DIR/pki/ks.key" -i "ks-$1" \
    -t "kgr/forget" -C 1 -W 1 >/dev/null 2>&1 || true
}

# ked_cluster_up K: K instances of one KS on etcd (instance 0 first: it
# creates the state and the domain key).
ked_cluster_up() {
  local k=$1 m  # not i: ked.bash's wait_port sets a global i
  KS_INSTANCES=$k
  mkdir -p "$KED_DIR/recovery"
  "$KS_BIN" recovery-key --out-private "$KED_DIR/recovery/key" \
    --out-public "$KED_DIR/recovery/pub" >/dev/null
  swtpm_up ks0
  # shellcheck disable=SC2046
  "$KS_BIN" init $(ksi_args 0) >>"$KED_DIR/logs/ks0.log" 2>&1 || die "kgr-ks init failed"
  # shellcheck disable=SC2046
  "$KS_BIN" backup $(ksi_args 0) --backup-recovery-public "$KED_DIR/recovery/pub" \
    --out "$KED_DIR/recovery/ks.kgrbak" >>"$KED_DIR/logs/ks0.log" 2>&1 || die "kgr-ks backup failed"
  # shellcheck disable=SC2046
  "$KS_BIN" cluster init $(ksi_args 0) --state "$ETCD_URL" --instance 0 \
    >>"$KED_DIR/logs/ks0.log" 2>&1 || die "kgr-ks cluster init failed"
  ksi_start 0
  for ((m = 1; m < k; m++)); do
    swtpm_up "ks$m"
    # shellcheck disable=SC2046
    "$KS_BIN" restore $(ksi_args "$m") --backup "$KED_DIR/recovery/ks.kgrbak" \
      --recovery-key "$KED_DIR/recovery/key" >>"$KED_DIR/logs/ks$m.log" 2>&1 ||
      { tail -3 "$KED_DIR/logs/ks$m.log" >&2; die "kgr-ks restore of instance $m failed"; }
    ksi_join "$m"
    ksi_start "$m"
  done
  # ked.bash's node and AC helpers use the KS's certificate only.
  say "ked: $k kgr-ks instances of one KS on etcd, lanes 0-$((k - 1)), shared group $KSI_GROUP"
}
