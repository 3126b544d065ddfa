#!/usr/bin/env bash
# Installs every build and test dependency of kgr on Debian 12 (as root).
set -euo pipefail
if [[ $(id -u) -ne 0 ]]; then
  echo "install-deps.sh: run as root (apt-get)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
packages=(
  build-essential cmake ninja-build pkg-config clang libclang-rt-14-dev
  libssl-dev openssl libpaho-mqttpp-dev libpaho-mqtt-dev libmosquitto-dev
  libtss2-dev tpm2-tools swtpm swtpm-tools
  mosquitto mosquitto-clients nlohmann-json3-dev libspdlog-dev
  libgtest-dev libgmock-dev procps iproute2 binutils xxd python3 curl
  libsystemd-dev systemd file adduser tpm-udev dpkg-dev
  libcurl4-openssl-dev etcd-server
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "install-deps.sh: installing ${missing[*]}"
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The packaged mosquitto service is not used: tests start their own brokers.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet mosquitto 2>/dev/null; then
  systemctl stop mosquitto || true
fi
echo "install-deps.sh: dependencies ready"
