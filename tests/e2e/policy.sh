#!/usr/bin/env bash
# Lifetime policy with the real daemons: with at most 6 frames per pair key,
# the nodes renew the pair's key by themselves while data keeps flowing, and
# no frame is lost or refused.
set -euo pipefail
src=${KGR_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
export TSS2_LOG=all+none KED_TRACE=1
export NODE_EXTRA_ARGS="--key-max-frames 6"
source "$src/tests/e2e/ked.bash"

ked_init
ked_broker_up
ked_ks_up
ked_pair alpha bravo
version() {
  node "$1" status --json | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["pairs"][0]["key_version"])'
}
v0=$(version alpha)
for i in $(seq 1 30); do
  node alpha send --peer "${NODE_ID[bravo]}" --data "frame $i" | grep -q "ack" ||
    die "frame $i was not answered"
  sleep 0.1
done
sleep 1
va=$(version alpha); vb=$(version bravo)
[[ $va == "$vb" ]] || die "versions differ: alpha $va, bravo $vb"
((va >= v0 + 3)) || die "expected automatic renewals: version $v0 -> $va"
say "ok: 30 frames with at most 6 per key: key version $v0 -> $va, every frame answered"
node alpha status | head -2
echo "policy: OK"
