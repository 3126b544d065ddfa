#!/usr/bin/env bash
# The Prometheus endpoints of kgr-ks run and kgr-node run (--metrics-listen,
# docs/metrics.md), scraped with curl over a real KED: the numbers move with
# what happens (a key established, data sent, a refusal, a replayed frame),
# and the HTTP server answers 404/405/400 to what is not a scrape.
set -euo pipefail
src=${KGR_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
export TSS2_LOG=all+none KED_TRACE=1 KED_OBSERVER=1
source "$src/tests/e2e/ked.bash"

ked_init
ked_broker_up
KS_METRICS=$(free_port)
ALPHA_METRICS=$(free_port)
KS_EXTRA_ARGS="--metrics-listen 127.0.0.1:$KS_METRICS"
NODE_ARGS[alpha]="--metrics-listen 127.0.0.1:$ALPHA_METRICS"
ked_ks_up
ked_observe 'kgr/ks/#'

scrape() { curl -sS --max-time 5 "http://127.0.0.1:$1/metrics"; }
# metric PORT 'NAME{LABELS}': the sample's value (exact name and labels).
metric() {
  scrape "$1" | awk -v m="$2" '$1 == m { print $2; found = 1 } END { if (!found) print "missing" }'
}
# wait_metric PORT SAMPLE MIN: until the sample is at least MIN (5 s).
wait_metric() {
  local v
  for _ in $(seq 50); do
    v=$(metric "$1" "$2")
    [[ $v != missing ]] && awk -v v="$v" -v m="$3" 'BEGIN { exit !(v >= m) }' && return 0
    sleep 0.1
  done
  die "$2 on :$1 is $v, expected >= $3"
}

# Before anything: the families are there, at zero.
text=$(scrape "$KS_METRICS")
grep -q '^# TYPE kgr_ks_frames_dropped_total counter$' <<<"$text" || die "no drop family: $text"
grep -q '^# TYPE kgr_ks_establishment_seconds histogram$' <<<"$text" || die "no histogram"
grep -q '^kgr_ks_establishment_seconds_bucket{le="+Inf"} 0$' <<<"$text" || die "histogram not at 0"
[[ $(metric "$KS_METRICS" kgr_ks_keys_confirmed_total) == 0 ]] || die "keys confirmed before any request"
say "ok: KS endpoint up on :$KS_METRICS, counters at zero"

ked_pair alpha bravo
wait_metric "$KS_METRICS" kgr_ks_registrations_total 2
wait_metric "$KS_METRICS" kgr_ks_keys_issued_total 1
wait_metric "$KS_METRICS" kgr_ks_keys_confirmed_total 1
wait_metric "$KS_METRICS" kgr_ks_establishment_seconds_count 1
wait_metric "$KS_METRICS" 'kgr_ks_nodes{state="registered"}' 2
wait_metric "$KS_METRICS" kgr_store_fsync_seconds_count 1
[[ $(metric "$ALPHA_METRICS" kgr_node_keys_established_total) == 1 ]] || die "alpha: keys established"
[[ $(metric "$ALPHA_METRICS" kgr_node_keys_held) == 1 ]] || die "alpha: keys held"
[[ $(metric "$ALPHA_METRICS" kgr_node_key_request_seconds_count) == 1 ]] || die "alpha: latency count"
[[ $(metric "$ALPHA_METRICS" kgr_node_registered) == 1 ]] || die "alpha: not registered"
say "ok: a key request shows at the KS (issued, confirmed, establishment latency) and at alpha"

# Data: alpha's request and bravo's reply.
sent=$(metric "$ALPHA_METRICS" kgr_node_data_frames_sent_total)
node alpha send --peer "${NODE_ID[bravo]}" --data "hello" | grep -q "ack 5 bytes"
[[ $(metric "$ALPHA_METRICS" kgr_node_data_frames_sent_total) == $((sent + 1)) ]] || die "data sent did not move"
[[ $(metric "$ALPHA_METRICS" kgr_node_data_frames_received_total) -ge 1 ]] || die "data reply not counted"
# A renewal.
node alpha renew --peer "${NODE_ID[bravo]}" >/dev/null
[[ $(metric "$ALPHA_METRICS" kgr_node_renewals_total) == 1 ]] || die "renewal not counted"
wait_metric "$KS_METRICS" kgr_ks_keys_confirmed_total 2
say "ok: data frames and a renewal counted at alpha"

# A refusal: charlie asks for a pair the AC never allowed.
ked_node_add charlie
wait_registered charlie
node_peers charlie alpha >/dev/null
set +e; node charlie request-key --peer "${NODE_ID[alpha]}" >/dev/null 2>&1; rc=$?; set -e
[[ $rc == 4 ]] || die "charlie: expected a refusal (4), got $rc"
[[ $(metric "$KS_METRICS" 'kgr_ks_requests_refused_total{code="pair_not_allowed"}') == 1 ]] ||
  die "refusal not counted under pair_not_allowed"
say "ok: a refused pair shows under kgr_ks_requests_refused_total{code=\"pair_not_allowed\"}"

# Replayed frames: every TOPIC1 frame the observer saw, sent again.
replays=$(metric "$KS_METRICS" 'kgr_ks_frames_dropped_total{reason="replay"}')
n=0
while read -r topic hex; do
  [[ $topic == kgr/ks/* && $topic != kgr/ks/ac && -n $hex ]] || continue
  printf '%s' "$hex" | xxd -r -p >"$KED_DIR/frame.bin"
  mqtt_as n00000000 mosquitto_pub -q 1 -t "$topic" -f "$KED_DIR/frame.bin"
  n=$((n + 1))
done < <(cat "$KED_DIR/observed")
((n > 0)) || die "the observer saw no TOPIC1 frame"
wait_metric "$KS_METRICS" 'kgr_ks_frames_dropped_total{reason="replay"}' $((replays + n))
# And junk on the registration topic.
printf 'junk' >"$KED_DIR/junk.bin"
mqtt_as n00000000 mosquitto_pub -q 1 -t kgr/register -f "$KED_DIR/junk.bin"
wait_metric "$KS_METRICS" 'kgr_ks_frames_dropped_total{reason="malformed"}' 1
say "ok: $n replayed frames under reason=\"replay\", junk under reason=\"malformed\""

# Not a scrape: 404, 405, 400, and the endpoint still serves.
code() { curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$@"; }
[[ $(code "http://127.0.0.1:$KS_METRICS/") == 404 ]] || die "/ is not 404"
[[ $(code -X POST "http://127.0.0.1:$KS_METRICS/metrics") == 405 ]] || die "POST is not 405"
bad=$(printf 'BAD REQUEST\r\n\r\n' | timeout 5 bash -c "exec 3<>/dev/tcp/127.0.0.1/$KS_METRICS; cat >&3; cat <&3" | head -1)
[[ $bad == "HTTP/1.1 400"* ]] || die "a bad request line got: $bad"
[[ $(code "http://127.0.0.1:$ALPHA_METRICS/metrics") == 200 ]] || die "alpha endpoint gone"
# Loopback only: the endpoint is not on another address of this machine.
other=$(hostname -I 2>/dev/null | awk '{print $1}')
if [[ -n $other && $other != 127.* ]]; then
  [[ $(code --connect-timeout 2 "http://$other:$KS_METRICS/metrics") == 000 ]] ||
    die "the KS metrics answer on $other"
fi
say "ok: 404, 405 and 400 for what is not a scrape; loopback only"
echo "metrics: OK"
