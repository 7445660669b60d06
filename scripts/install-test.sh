#!/usr/bin/env bash
# Installs rejoin from a build tree and uses it the way a user would:
#  1. `cmake --install` into a fresh prefix; a program of one's own
#     (examples/consumer) is built against it with find_package (shared and
#     static libraries) and with pkg-config, and runs against the installed
#     broker, which reads its flags from a configuration file, while the
#     installed rejoin-ctl reads the broker's status;
#  2. the Debian packages are built with CPack, their control fields and
#     contents checked; with --dpkg (root only) they are installed with
#     dpkg -i, the consumer is built against the installed files, run against
#     /usr/bin/rejoin-broker, and the packages are removed again.
# Usage: scripts/install-test.sh [--dpkg]   (env: BUILD_DIR, default build)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
build_dir=$(cd "${BUILD_DIR:-build}" && pwd)
use_dpkg=0
[ "${1:-}" = "--dpkg" ] && use_dpkg=1

work=$(mktemp -d "${TMPDIR:-/tmp}/rejoin-install-XXXXXX")
broker_pid=
installed_pkgs=0
cleanup() {
  [ -n "$broker_pid" ] && kill -9 "$broker_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  if [ "$installed_pkgs" = 1 ]; then
    dpkg --purge rejoin-dev rejoin >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "install-test: FAIL: $*" >&2; exit 1; }
jobs=$(nproc 2>/dev/null || echo 2)

# A loopback port nobody listens on now.
# A port nothing listens on, below the kernel's ephemeral range: a port in
# that range may be held by an outgoing connection, which a connect test
# does not see and which makes a bind fail.
free_port() {
  local p low=32768
  read -r low _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || true
  [ "$low" -gt 11000 ] || low=32768
  while :; do
    p=$((10000 + RANDOM % (low - 10000)))
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
  done
}

# run_consumer BROKER SERVER CLIENT LABEL: a broker from a config file, the
# consumer's server and 200 calls of its client.
run_consumer() {
  local broker=$1 server=$2 client=$3 label=$4
  local dir="$work/run-$label"
  local endpoint admin attempt
  mkdir -p "$dir"
  # Another process may take a chosen port before the broker binds it: a
  # broker that exits at start is tried again on other ports.
  for attempt in 1 2 3 4 5; do
    endpoint="tcp://127.0.0.1:$(free_port)"
    admin="tcp://127.0.0.1:$(free_port)"
    [ "$endpoint" != "$admin" ] || continue
    cat >"$dir/broker.toml" <<TOML
endpoint = "$endpoint"
roster = "$dir/roster"
admin = "$admin"
log-level = "warn"
TOML
    "$broker" --config "$dir/broker.toml" >"$dir/broker.log" 2>&1 &
    broker_pid=$!
    sleep 0.3
    kill -0 "$broker_pid" 2>/dev/null && break
    wait "$broker_pid" 2>/dev/null || true
    broker_pid=
    grep -q "already in use" "$dir/broker.log" ||
      fail "$label: broker did not start: $(cat "$dir/broker.log")"
  done
  [ -n "$broker_pid" ] || fail "$label: no free ports for the broker"
  "$server" "$endpoint" "$dir/server-journal" >"$dir/server.log" 2>&1 &
  local server_pid=$!
  local out
  # Bounded: a consumer that cannot reach the broker fails the run instead
  # of holding it.
  if ! out=$(timeout 120 "$client" "$endpoint" "$dir/client-journal" 200 2>&1); then
    cat "$dir"/*.log >&2 || true
    kill -9 "$server_pid" 2>/dev/null || true
    fail "$label: consumer client: $out"
  fi
  # The operator's view, from the rejoin-ctl installed beside the broker.
  "$(dirname "$broker")/rejoin-ctl" broker status "$admin" >"$dir/status.txt" ||
    fail "$label: rejoin-ctl broker status"
  grep -q "upper-1  alive" "$dir/status.txt" ||
    fail "$label: broker status does not show upper-1: $(cat "$dir/status.txt")"
  kill "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  kill "$broker_pid" 2>/dev/null || true
  wait "$broker_pid" 2>/dev/null || true
  broker_pid=
  grep -q upper-1 "$dir/roster" 2>/dev/null ||
    fail "$label: broker did not use its config file (no roster at $dir/roster)"
  echo "install-test: $label: $out"
}

# build_with_pkgconfig PKG_CONFIG_PATH OUT_DIR
build_with_pkgconfig() {
  local pcpath=$1 out=$2
  mkdir -p "$out"
  local flags
  for prog in upper_server:rejoin-server upper_client:rejoin-client; do
    local name=${prog%%:*} pc=${prog#*:}
    flags=$(PKG_CONFIG_PATH="$pcpath" pkg-config --cflags --libs "$pc") ||
      fail "pkg-config $pc"
    local libdir
    libdir=$(PKG_CONFIG_PATH="$pcpath" pkg-config --variable=libdir "$pc")
    # shellcheck disable=SC2086
    g++ -std=c++20 -O1 -o "$out/$name" "$root/examples/consumer/$name.cpp" \
      $flags -Wl,-rpath,"$libdir" || fail "pkg-config build of $name"
  done
}

# 1. cmake --install into a prefix.
prefix="$work/prefix"
cmake --install "$build_dir" --prefix "$prefix" >"$work/install.log"
for f in bin/rejoin-broker bin/rejoin-call bin/rejoin-ctl \
  include/rejoin/client/client.h include/rejoin/proto/version.h \
  include/rejoin/server/server.h include/rejoin/proto/status.h \
  lib/cmake/rejoin/rejoinConfig.cmake lib/cmake/rejoin/rejoinConfigVersion.cmake \
  lib/pkgconfig/rejoin-client.pc lib/pkgconfig/rejoin-server.pc; do
  found=$(cd "$prefix" && ls -d $f 2>/dev/null || ls -d ${f/lib\//lib\/*\/} 2>/dev/null || true)
  [ -n "$found" ] || fail "cmake --install: $f missing"
done
[ ! -e "$prefix/include/rejoin/transport" ] || fail "internal transport headers installed"
libdir=$(dirname "$(find "$prefix" -name 'librejoin-client.so' | head -1)")
[ -n "$libdir" ] || fail "librejoin-client.so not installed"
soname=$(objdump -p "$libdir/librejoin-client.so" | awk '/SONAME/ {print $2}')
[[ "$soname" == librejoin-client.so.* ]] || fail "librejoin-client.so has no SONAME ($soname)"
[ -f "$libdir/librejoin-client.a" ] || fail "static librejoin-client.a missing"
# The consumer's link line must not need rejoin's implementation libraries.
if objdump -p "$libdir/librejoin-client.so" | grep -q 'NEEDED.*libmsgpack'; then
  fail "msgpack leaks into librejoin-client.so"
fi
echo "install-test: installed to a prefix; SONAME $soname"

cmake -S examples/consumer -B "$work/consumer-cmake" \
  -DCMAKE_PREFIX_PATH="$prefix" >"$work/consumer-cmake.log" ||
  { cat "$work/consumer-cmake.log"; fail "find_package(rejoin 0.2 CONFIG)"; }
cmake --build "$work/consumer-cmake" -j"$jobs" >>"$work/consumer-cmake.log" ||
  { cat "$work/consumer-cmake.log"; fail "consumer build (find_package)"; }
run_consumer "$prefix/bin/rejoin-broker" "$work/consumer-cmake/upper_server" \
  "$work/consumer-cmake/upper_client" find_package

# The same with the static libraries (find_package(rejoin COMPONENTS static)).
cmake -S examples/consumer -B "$work/consumer-static" -DCONSUMER_STATIC=ON \
  -DCMAKE_PREFIX_PATH="$prefix" >"$work/consumer-static.log" &&
  cmake --build "$work/consumer-static" -j"$jobs" >>"$work/consumer-static.log" ||
  { cat "$work/consumer-static.log"; fail "consumer build (static)"; }
if ldd "$work/consumer-static/upper_client" | grep -q librejoin; then
  fail "static consumer still needs a shared librejoin"
fi
run_consumer "$prefix/bin/rejoin-broker" "$work/consumer-static/upper_server" \
  "$work/consumer-static/upper_client" find_package-static

build_with_pkgconfig "$libdir/pkgconfig" "$work/consumer-pc"
run_consumer "$prefix/bin/rejoin-broker" "$work/consumer-pc/upper_server" \
  "$work/consumer-pc/upper_client" pkg-config

# A version the package does not satisfy is refused.
mkdir -p "$work/badver"
cat >"$work/badver/CMakeLists.txt" <<'CM'
cmake_minimum_required(VERSION 3.16)
project(badver LANGUAGES CXX)
find_package(rejoin 9.0 CONFIG REQUIRED)
CM
if cmake -S "$work/badver" -B "$work/badver/b" -DCMAKE_PREFIX_PATH="$prefix" \
  >/dev/null 2>&1; then
  fail "find_package(rejoin 9.0) accepted version 0.x"
fi

# 2. Debian packages.
(cd "$build_dir" && cpack -G DEB -B "$work/deb" >"$work/cpack.log" 2>&1) ||
  { cat "$work/cpack.log"; fail "cpack"; }
runtime_deb=$(ls "$work"/deb/rejoin_*.deb)
dev_deb=$(ls "$work"/deb/rejoin-dev_*.deb)
version=$(dpkg-deb -f "$runtime_deb" Version)
[ "$(dpkg-deb -f "$runtime_deb" Package)" = rejoin ] || fail "runtime package name"
[ "$(dpkg-deb -f "$dev_deb" Package)" = rejoin-dev ] || fail "dev package name"
dpkg-deb -f "$runtime_deb" Depends | grep -q libzmq5 ||
  fail "runtime Depends lacks libzmq5: $(dpkg-deb -f "$runtime_deb" Depends)"
dpkg-deb -f "$dev_deb" Depends | grep -q "rejoin (= $version)" ||
  fail "dev Depends: $(dpkg-deb -f "$dev_deb" Depends)"
runtime_files=$(dpkg-deb -c "$runtime_deb")
dev_files=$(dpkg-deb -c "$dev_deb")
for f in ./usr/bin/rejoin-broker ./usr/bin/rejoin-call ./usr/bin/rejoin-ctl \
  ./usr/lib/systemd/system/rejoin-broker.service ./etc/rejoin/broker.toml \
  "librejoin-client.so.$version" "librejoin-server.so.$version"; do
  grep -qF "$f" <<<"$runtime_files" || fail "runtime package lacks $f"
done
for f in ./usr/include/rejoin/client/client.h rejoinConfig.cmake \
  rejoin-client.pc librejoin-client.a "librejoin-client.so "; do
  grep -qF "$f" <<<"$dev_files" || fail "dev package lacks $f"
done
dpkg-deb -I "$runtime_deb" conffiles | grep -q /etc/rejoin/broker.toml ||
  fail "broker.toml is not a conffile"
echo "install-test: packages $(basename "$runtime_deb") $(basename "$dev_deb") checked"

if [ "$use_dpkg" = 1 ]; then
  [ "$(id -u)" = 0 ] || fail "--dpkg needs root"
  if dpkg-query -W rejoin >/dev/null 2>&1; then
    fail "a rejoin package is already installed on this machine; not touching it"
  fi
  installed_pkgs=1
  dpkg -i "$runtime_deb" "$dev_deb" >"$work/dpkg.log" 2>&1 ||
    { cat "$work/dpkg.log"; fail "dpkg -i"; }
  /usr/bin/rejoin-broker --version | grep -q "$version" || fail "installed broker --version"
  # The unit as installed: valid, and its sandbox rated by systemd itself.
  unit=/usr/lib/systemd/system/rejoin-broker.service
  systemd-analyze verify "$unit" >"$work/unit.log" 2>&1 ||
    { cat "$work/unit.log"; fail "systemd-analyze verify $unit"; }
  systemd-analyze security --offline=true --threshold=20 "$unit" \
    >"$work/security.log" 2>&1 ||
    { tail -5 "$work/security.log"; fail "unit exposure above 2.0 (--threshold counts tenths)"; }
  echo "install-test: unit $(grep -o 'exposure level.*' "$work/security.log")"
  cmake -S examples/consumer -B "$work/consumer-sys" >"$work/consumer-sys.log" &&
    cmake --build "$work/consumer-sys" -j"$jobs" >>"$work/consumer-sys.log" ||
    { cat "$work/consumer-sys.log"; fail "consumer build against the packages"; }
  run_consumer /usr/bin/rejoin-broker "$work/consumer-sys/upper_server" \
    "$work/consumer-sys/upper_client" dpkg-find_package
  build_with_pkgconfig "" "$work/consumer-sys-pc"
  run_consumer /usr/bin/rejoin-broker "$work/consumer-sys-pc/upper_server" \
    "$work/consumer-sys-pc/upper_client" dpkg-pkg-config
  dpkg --purge rejoin-dev rejoin >/dev/null
  installed_pkgs=0
  [ ! -e /usr/bin/rejoin-broker ] || fail "dpkg --purge left /usr/bin/rejoin-broker"
  echo "install-test: packages installed with dpkg, used and purged"
fi
echo "install-test: ok"
