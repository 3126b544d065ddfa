#!/usr/bin/env bash
# The README's demo, against the build under test: must end with "demo: OK".
set -euo pipefail
src=${KGR_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
out=$(KGR_SKIP_SETUP=1 bash "$src/scripts/demo.sh" 2>&1) || { echo "$out"; exit 1; }
echo "$out" | tail -3
grep -q '^demo: OK nodes=3 keys=2 renewals=1 data_frames=10$' <<<"$out"
