#!/usr/bin/env bash
# Configures and builds kgr into ${BUILD_DIR:-build}. Extra args go to cmake.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD_DIR:-build}
cmake -S . -B "$build" -G Ninja "$@" >/dev/null
ninja -C "$build" -j"$(nproc)" ${BUILD_TARGET:-}
