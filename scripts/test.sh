#!/usr/bin/env bash
# Installs what is missing, builds rejoin and runs the whole default test
# suite. Usage: scripts/test.sh [extra ctest args]
# Environment: BUILD_DIR (default build), REJOIN_SANITIZE=ON for an
# ASan+UBSan build, REJOIN_SOAK_SCALE=N to multiply crash/mutation iteration
# counts, REJOIN_TEST_LABELS to choose labels (default: everything but soak).
set -euo pipefail
cd "$(dirname "$0")/.."

build_dir=${BUILD_DIR:-build}
sanitize=${REJOIN_SANITIZE:-OFF}
jobs=$(nproc 2>/dev/null || echo 2)

# The sanitizer build is for tests only: no benchmarks, no install targets.
bench=ON
install=ON
[ "$sanitize" = ON ] && bench=OFF && install=OFF

# With the benchmarks come their NATS and MQTT baselines, whose correctness
# tests (bench_test) then must build and run: a missing library fails the
# configure, a missing server fails the tests.
if [ "$bench" = ON ]; then
  scripts/setup.sh --bench
else
  scripts/setup.sh
fi

cmake -S . -B "$build_dir" -DREJOIN_SANITIZE="$sanitize" \
  -DREJOIN_BUILD_BENCH="$bench" -DREJOIN_BENCH_REQUIRE_BASELINES="$bench" \
  -DREJOIN_INSTALL="$install" >/dev/null
cmake --build "$build_dir" -j"$jobs"

label_args=(-LE soak)
if [ -n "${REJOIN_TEST_LABELS:-}" ]; then
  label_args=(-L "$REJOIN_TEST_LABELS")
fi
cd "$build_dir"
ctest --output-on-failure --timeout 600 -j"$jobs" "${label_args[@]}" "$@"
