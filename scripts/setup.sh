#!/usr/bin/env bash
# Installs the Debian packages rejoin's build, tests and tools need, and
# nothing else. Idempotent: packages already present are left alone, and apt
# is not touched at all when nothing is missing.
# Usage: scripts/setup.sh [--bench] [--fuzz]
#   --bench  also the systems rejoin-bench compares rejoin with: nats-server
#            and libnats-dev (NATS), mosquitto and libmosquitto-dev (MQTT).
#            The benchmark starts its own servers on free loopback ports; a
#            mosquitto service the package may have started is not used.
#   --fuzz   also clang and its runtimes (libFuzzer, the sanitizers) for
#            scripts/fuzz.sh.
set -euo pipefail

bench=0
fuzz=0
for arg in "$@"; do
  case "$arg" in
    --bench) bench=1 ;;
    --fuzz) fuzz=1 ;;
    *) echo "setup: unknown argument $arg (usage: setup.sh [--bench] [--fuzz])" >&2; exit 2 ;;
  esac
done

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
if [ "$bench" = 1 ]; then
  packages+=(nats-server libnats-dev mosquitto libmosquitto-dev)
fi
if [ "$fuzz" = 1 ]; then
  packages+=(clang-14 libclang-rt-14-dev)
fi

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
