#!/usr/bin/env bash
# Cross-builds kgr for arm64 (e.g. a Raspberry Pi on a 64-bit OS) into
# ${BUILD_DIR:-build-arm64}, RelWithDebInfo with the tests. Needs
# scripts/install-deps-arm64.sh. Extra args go to cmake. The test programs
# run under qemu-user: ctest --test-dir build-arm64 -L unit
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build-arm64} bash scripts/build.sh \
  -DCMAKE_TOOLCHAIN_FILE="$PWD/cmake/aarch64-linux-gnu.cmake" \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKGR_TESTS=ON "$@"
