#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine (as root) and runs every test of kgr:
# unit, integration (real swtpm, real TLS Mosquitto), end-to-end; then one
# clang build with ASan+UBSan and libFuzzer instrumentation, whose fuzzers run
# for a bounded time each and whose test suite runs again under the
# sanitizers (less the simulation seeds and the QoS 0 repeats of the fault
# scripts: the native suite runs those, and CI's time is short); the Debian packages (scripts/test-packages.sh: built, installed,
# units verified, the demo on the installed binaries, purged); then the arm64
# cross-build (in the background from the end of the native build, at low
# priority) with its kgr-node package and its unit and integration tests
# under qemu-user (scripts/test-arm64.sh). The native suite's ctest summary is
# printed again as the last line. KGR_SKIP_FUZZ=1 (fuzzers), KGR_SKIP_ASAN=1
# (the sanitizer suite; with both set the clang build is skipped) and
# KGR_SKIP_ARM64=1 leave a step out.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS
step() { echo "test.sh: $1 ($((SECONDS - start)) s since start)"; }
arm64=1
[[ "${KGR_SKIP_ARM64:-0}" == 1 ]] && arm64=0
bash scripts/install-deps.sh
if ((arm64)); then bash scripts/install-deps-arm64.sh; fi
step "dependencies installed"

# Line tables only (-g1, -gline-tables-only): enough for backtraces and
# sanitizer reports, and full -g costs about 40% more compile time.
BUILD_DIR=build bash scripts/build.sh -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O2 -g1 -DNDEBUG" \
  -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O2 -g1 -DNDEBUG"
step "native build done"
# The arm64 cross-build (and its package) runs in the background at low
# priority from here on: it soaks up the CPU the test suites leave idle, and
# its tests run at the end (`test-arm64.sh test`).
arm64_pid=""
arm64_log=$(mktemp /tmp/kgr-arm64-build-XXXXXX)
if ((arm64)); then
  nice -n 15 bash scripts/test-arm64.sh build >"$arm64_log" 2>&1 &
  arm64_pid=$!
  trap '[[ -n $arm64_pid ]] && kill "$arm64_pid" 2>/dev/null; true' EXIT
fi
summary=$(mktemp /tmp/kgr-ctest-XXXXXX)
status=0
(cd build && ctest --output-on-failure -j2 --timeout 600) 2>&1 |
  tee "$summary" || status=1
step "native ctest done"

if [[ "${KGR_SKIP_FUZZ:-0}" != 1 || "${KGR_SKIP_ASAN:-0}" != 1 ]]; then
  # One clang build serves both: every target with ASan+UBSan (no recovery),
  # the fuzzers with libFuzzer on top.
  CC=clang CXX=clang++ BUILD_DIR=build-san bash scripts/build.sh \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKGR_FUZZ=ON -DKGR_SANITIZE=ON -DKGR_TESTS=ON \
    -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -gline-tables-only -DNDEBUG" \
    -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O1 -gline-tables-only -DNDEBUG"
  step "sanitizer build done"
  if [[ "${KGR_SKIP_FUZZ:-0}" != 1 ]]; then
    bash tests/fuzz/run.sh build-san "${KGR_FUZZ_SECONDS:-10}"
    step "fuzzers done"
  fi
  if [[ "${KGR_SKIP_ASAN:-0}" != 1 ]]; then
    san_e2e='^e2e_(demo|app_api|backup_restore|reload|revoke_cut)$'
    # Every unit and integration test, and the e2e tests that cover the
    # most daemon code per second (whole KED, app API, backup/restore,
    # reload, revocation cut); the other e2e tests (about 600 test-seconds
    # under ASan) exercise the same code paths with other timings.
    (cd build-san &&
     export LSAN_OPTIONS="suppressions=$PWD/../tests/lsan.supp:print_suppressions=0" &&
     ctest --output-on-failure -j2 --timeout 900 -LE "bench|sim|e2e" &&
     ctest --output-on-failure -j2 --timeout 900 -R "$san_e2e")
    step "sanitizer ctest done"
  fi
fi
bash scripts/test-packages.sh || status=1
step "packages done"
if ((arm64)); then
  if ! wait "$arm64_pid"; then
    cat "$arm64_log"
    echo "test.sh: the arm64 build failed (above)" >&2
    exit 1
  fi
  arm64_pid=""
  cat "$arm64_log"
  step "arm64 build done"
  bash scripts/test-arm64.sh test
  step "arm64 tests done"
fi
rm -f "$arm64_log"
# The native suite's result, last (the README's promise).
echo "test.sh: native suite: $(grep -E 'tests passed|tests failed' "$summary" | tail -1)"
rm -f "$summary"
exit $status
