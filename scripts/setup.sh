#!/usr/bin/env bash
# Installs the Debian packages rejoin's build, tests and tools need, and
# nothing else. Idempotent: packages already present are left alone, and apt
# is not touched at all when nothing is missing. With arguments it installs
# those packages instead (scripts/fuzz.sh: clang and its runtimes).
set -euo pipefail

packages=(
  cmake make g++ pkg-config
  libzmq3-dev cppzmq-dev
  libmsgpack-cxx-dev libboost-dev
  libgtest-dev libbenchmark-dev
  libcli11-dev libspdlog-dev
  prometheus-cpp-dev python3 python3-prometheus-client
  nlohmann-json3-dev
  clang-format
  dpkg-dev file systemd
)
[ $# -gt 0 ] && packages=("$@")

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#packages[@]} packages present"
  exit 0
fi

sudo=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "setup: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  sudo=(sudo)
fi
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -q
"${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
