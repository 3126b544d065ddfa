#!/usr/bin/env bash
# Installs what cross-building kgr for arm64 and running its tests under
# qemu-user needs on Debian 12 x86-64 (as root): the cross toolchain, qemu,
# and the arm64 (multiarch) builds of the libraries scripts/install-deps.sh
# installs natively. Idempotent: installs only what is missing. The tools the
# tests start (swtpm, mosquitto, tpm2-tools, openssl) stay native.
set -euo pipefail
if [[ $(id -u) -ne 0 ]]; then
  echo "install-deps-arm64.sh: run as root (dpkg, apt-get)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
bash "$(dirname "$0")/install-deps.sh" >/dev/null
packages=(
  crossbuild-essential-arm64 qemu-user-static file
  libssl-dev:arm64 libpaho-mqttpp-dev:arm64 libpaho-mqtt-dev:arm64
  libmosquitto-dev:arm64 libtss2-dev:arm64 libspdlog-dev:arm64
  libfmt-dev:arm64 libgtest-dev:arm64 libgmock-dev:arm64 libc6:arm64
  libsystemd-dev:arm64 libcurl4-openssl-dev:arm64
)
update=0
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
  dpkg --add-architecture arm64
  update=1
fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "install-deps-arm64.sh: installing ${missing[*]}"
  update=1
fi
if ((update)); then apt-get update -qq; fi
if ((${#missing[@]})); then
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
echo "install-deps-arm64.sh: arm64 cross toolchain and libraries ready"
