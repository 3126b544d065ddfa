#!/usr/bin/env bash
# Groups over the real executables (TLS Mosquitto, swtpm, kgr-ks, kgr-ac,
# kgr-node daemons): a group of three sends and receives (kgr-node
# group-send / group-recv); a removed member, still holding everything it
# ever received (a copy of its state directory from before its removal,
# which then also follows every rekey it can), fails to read any message
# sent after its removal; a new member fails to read one sent before its
# join. Every message and rekey is captured off the broker by an observer
# identity and read by kgr-group-reader with the member's own keys (through
# its TPM), not through the broker's ACL. Each secrecy check has its
# positive control: the same reader opens what the member may read. The
# test fails when the KS does not exclude a removed member (checked with a
# KS whose rekey refreshes the root instead of removing the leaf: charlie's
# copy follows both rekeys and opens both later messages).
source "$(dirname "$0")/ked.bash"
READER=${KGR_GROUP_READER:-$KGR_BUILD/tests/kgr-group-reader}
[[ -x $READER ]] || die "build kgr-group-reader first ($READER)"
KED_OBSERVER=1
ked_init
ked_broker_up
cp "$KED_DIR/broker/acl" "$KED_DIR/broker/acl.base"
ked_ks_up
for n in alpha bravo charlie delta; do ked_node_add "$n"; done
for n in alpha bravo charlie delta; do wait_registered "$n"; done
ked_observe 'kgr/#'

# The broker lets members read their groups' topics (docs/broker.md).
acl_update() {
  ac group list --json >"$KED_DIR/groups.json" 2>>"$KED_DIR/logs/ac.log" ||
    die "kgr-ac group list failed"
  bash "$KGR_SRC/broker-config/group-acl.sh" --acl "$KED_DIR/broker/acl.base" \
    --groups "$KED_DIR/groups.json" --out "$KED_DIR/broker/acl" \
    --pid-file "$KED_DIR/broker/pid"
}
ks_version() {  # the group's key version at the KS
  ac group list --json 2>>"$KED_DIR/logs/ac.log" | /usr/bin/python3 -c \
    'import json,sys; print([g["key_version"] for g in json.load(sys.stdin) if g["name"] == "room"][0])'
}
node_version() {  # NAME: the group's key version at the node (0: none)
  node "$1" group-list --json 2>/dev/null | /usr/bin/python3 -c \
    'import json,sys
gs = [g["key_version"] for g in json.load(sys.stdin)["groups"] if g["group"] == sys.argv[1]]
print(gs[0] if gs else 0)' "$GROUP"
}
# wait_members NAME...: each holds the KS's key version and has its group
# topics subscribed (the ACL update may come after the join).
wait_members() {
  local want n
  for _ in $(seq 150); do
    want=$(ks_version) || want=x
    local all=1
    for n in "$@"; do
      [[ $(node_version "$n") == "$want" ]] || all=0
      [[ $(grep -c "group $GROUP: subscribed" "$KED_DIR/logs/$n.log" || true) -gt 0 ]] || all=0
    done
    ((all)) && return 0
    sleep 0.2
  done
  die "members $* did not reach key version $want"
}
# recv NAME COUNT: a background group-recv of COUNT messages.
recv() {
  node "$1" group-recv --group "$GROUP" --count "$2" --wait-s 60 \
    >"$KED_DIR/recv-$1.out" 2>>"$KED_DIR/logs/$1.log" &
  RECV_PID[$1]=$!
  KED_PIDS+=("$!")
  for _ in $(seq 100); do grep -q subscribed "$KED_DIR/recv-$1.out" && return 0; sleep 0.05; done
  die "group-recv on $1 did not start"
}
declare -A RECV_PID=()
send() { node "$1" group-send --group "$GROUP" --data "$2" >/dev/null; }
# reader NAME STATE_DIR: what that member's keys open of everything observed.
reader() {
  "$READER" --state-dir "$2" --tcti "${NODE_TCTI[$1]}" --observed "$KED_DIR/observed"
}

# 1. A group of three: everybody hears everybody else.
out=$(ac group create --name room --members \
  "${NODE_ID[alpha]},${NODE_ID[bravo]},${NODE_ID[charlie]}" 2>>"$KED_DIR/logs/ac.log") ||
  die "kgr-ac group create failed"
GROUP=$(grep -o 'id [0-9a-f]\{8\}' <<<"$out" | cut -d' ' -f2)
acl_update
wait_members alpha bravo charlie
say "ok: group room ($GROUP) created; alpha, bravo, charlie at key version $(ks_version)"
recv bravo 2
recv charlie 1
send alpha "before-removal"
wait "${RECV_PID[charlie]}" || die "charlie did not receive: $(cat "$KED_DIR/recv-charlie.out")"
grep -q "from ${NODE_ID[alpha]} .*: before-removal$" "$KED_DIR/recv-charlie.out" ||
  die "charlie got: $(cat "$KED_DIR/recv-charlie.out")"
say "ok: alpha -> group, charlie printed: $(grep before-removal "$KED_DIR/recv-charlie.out")"

# 2. charlie keeps a copy of everything it holds, then is removed.
mkdir -m 0700 "$KED_DIR/charlie-kept"
tar -C "$KED_DIR/node-charlie" --exclude='*.sock' -cf - . | tar -C "$KED_DIR/charlie-kept" -xf -
v_before=$(ks_version)
ac group remove --name room --members "${NODE_ID[charlie]}" >/dev/null 2>>"$KED_DIR/logs/ac.log" ||
  die "kgr-ac group remove failed"
acl_update
wait_members alpha bravo
[[ $(ks_version) -gt $v_before ]] || die "no rekey at the removal"
for _ in $(seq 50); do [[ $(node_version charlie) == 0 ]] && break; sleep 0.1; done
[[ $(node_version charlie) == 0 ]] || die "charlie still holds the group"
send alpha "after-removal"
wait "${RECV_PID[bravo]}" || die "bravo did not receive: $(cat "$KED_DIR/recv-bravo.out")"
grep -q ": after-removal$" "$KED_DIR/recv-bravo.out" || die "bravo got: $(cat "$KED_DIR/recv-bravo.out")"
say "ok: removed charlie (key version $v_before -> $(ks_version)); bravo still hears alpha"

# 3. delta joins; it hears what is sent from then on.
ac group add --name room --members "${NODE_ID[delta]}" >/dev/null 2>>"$KED_DIR/logs/ac.log" ||
  die "kgr-ac group add failed"
acl_update
wait_members alpha bravo delta
recv delta 1
send bravo "after-join"
wait "${RECV_PID[delta]}" || die "delta did not receive: $(cat "$KED_DIR/recv-delta.out")"
grep -q "from ${NODE_ID[bravo]} .*: after-join$" "$KED_DIR/recv-delta.out" ||
  die "delta got: $(cat "$KED_DIR/recv-delta.out")"
say "ok: delta joined (key version $(ks_version)) and printed: $(grep after-join "$KED_DIR/recv-delta.out")"
sleep 1  # the observer has written the last messages

# 4. Secrecy, with the members' own keys (their TPMs; daemons stopped).
for n in charlie delta; do kill -TERM "${NODE_PID[$n]}"; wait "${NODE_PID[$n]}" 2>/dev/null || true; done
kept=$(reader charlie "$KED_DIR/charlie-kept") || die "reader on charlie's copy failed"
grep -q "^opened $GROUP v[0-9]* before-removal$" <<<"$kept" ||
  die "charlie's copy does not even open what it received: $kept"
grep -q "after-removal\|after-join" <<<"$kept" &&
  die "FORWARD SECRECY BROKEN: charlie's copy opened: $kept"
[[ $(grep -c "^sealed $GROUP" <<<"$kept") -ge 2 ]] ||
  die "charlie's copy saw fewer than 2 sealed messages: $kept"
say "ok: charlie's kept state opens 'before-removal' and neither later message:"
sed 's/^/  charlie: /' <<<"$kept"
joined=$(reader delta "$KED_DIR/node-delta") || die "reader on delta failed"
grep -q "^opened $GROUP v[0-9]* after-join$" <<<"$joined" ||
  die "delta's keys do not open what it received: $joined"
grep -q "before-removal\|after-removal" <<<"$joined" &&
  die "BACKWARD SECRECY BROKEN: delta opened: $joined"
say "ok: delta's state opens 'after-join' and neither earlier message:"
sed 's/^/  delta: /' <<<"$joined"
say "PASS groups"
