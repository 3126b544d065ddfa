#!/usr/bin/env bash
# Runs every fuzzer built in BUILD_DIR for SECONDS each on a copy of its
# committed seed corpus. Exits non-zero on the first crash (the reproducer is
# left in the work dir printed below).
set -euo pipefail
build=$(cd "${1:?usage: run.sh BUILD_DIR SECONDS}" && pwd)
seconds=${2:-10}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d /tmp/kgr-fuzz-XXXXXX)
status=0
for bin in "$build"/tests/fuzz/*_fuzz; do
  [[ -x "$bin" ]] || continue
  name=$(basename "$bin")
  corpus="$work/$name"
  mkdir -p "$corpus"
  cp -r "$here/corpus/$name/." "$corpus/" 2>/dev/null || true
  echo "fuzz: $name for ${seconds}s"
  if ! (cd "$work" && "$bin" -max_total_time="$seconds" -print_final_stats=0 \
        -max_len=8192 "$corpus" >"$work/$name.log" 2>&1); then
    echo "fuzz: $name FAILED; log and reproducer in $work" >&2
    tail -40 "$work/$name.log" >&2
    status=1
  else
    grep -E "^Done|#[0-9]+.*DONE" "$work/$name.log" | tail -1 || true
  fi
done
[[ $status -eq 0 ]] && rm -rf "$work"
exit $status
