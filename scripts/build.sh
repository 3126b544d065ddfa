#!/usr/bin/env bash
# Configures and builds kgr into ${BUILD_DIR:-build} with ${JOBS:-$(nproc)}
# parallel jobs (BUILD_TARGET: one target). Extra args go to cmake.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD_DIR:-build}
launcher=()
# ccache, where installed, makes rebuilds in several checkouts cheap.
if command -v ccache >/dev/null 2>&1; then
  launcher=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
fi
cmake -S . -B "$build" -G Ninja "${launcher[@]}" "$@" >/dev/null
ninja -C "$build" -j"${JOBS:-$(nproc)}" ${BUILD_TARGET:-}
