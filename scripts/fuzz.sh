#!/usr/bin/env bash
# Builds the fuzz targets of tests/fuzz with clang, libFuzzer and ASan+UBSan
# in build-fuzz, and runs each for a short fixed time on its seed corpus and
# regression inputs. Any crash, leak or failed property fails the script;
# the input that caused it is left in build-fuzz/crashes/<target>/ (copy it
# to tests/fuzz/regressions/<target>/ once the bug is fixed).
# Usage: scripts/fuzz.sh [target...]   (default: every target)
# Environment: FUZZ_SECONDS per target (default 10), BUILD_DIR (default
# build-fuzz), CXX_FUZZ (default clang++-14), FUZZ_JOBS (build jobs, default
# 2), FUZZ_ARGS (extra libFuzzer flags).
set -euo pipefail
cd "$(dirname "$0")/.."

build_dir=${BUILD_DIR:-build-fuzz}
seconds=${FUZZ_SECONDS:-10}
cxx=${CXX_FUZZ:-clang++-14}
jobs=${FUZZ_JOBS:-2}
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(codec batch journal roster keys keyfile)

# What the build needs, and clang with its runtimes (libFuzzer, the
# sanitizers).
scripts/setup.sh --fuzz

# Warnings stay warnings here: the gcc builds hold them as errors, and
# clang-14 reports a few of its own on code gcc accepts.
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
cmake -S . -B "$build_dir" -DCMAKE_CXX_COMPILER="$cxx" "${launcher[@]}" \
  -DREJOIN_FUZZ=ON -DREJOIN_BUILD_TESTS=OFF -DREJOIN_BUILD_BENCH=OFF \
  -DREJOIN_INSTALL=OFF -DREJOIN_WERROR=OFF >/dev/null
build_targets=(fuzz_seeds)
for t in "${targets[@]}"; do build_targets+=("${t}_fuzz"); done
cmake --build "$build_dir" -j"$jobs" --target "${build_targets[@]}"

seeds="$build_dir/seeds"
rm -rf "$seeds"
"$build_dir/tests/fuzz/fuzz_seeds" "$seeds"

status=0
for t in "${targets[@]}"; do
  corpus="$build_dir/corpus/$t"   # grows run after run
  crashes="$build_dir/crashes/$t"
  mkdir -p "$corpus" "$crashes"
  extra=()
  [ "$t" = codec ] && extra+=(tests/data/golden)
  [ -d "tests/fuzz/regressions/$t" ] && extra+=("tests/fuzz/regressions/$t")
  echo "== fuzz $t: ${seconds}s =="
  # shellcheck disable=SC2086
  if ! "$build_dir/tests/fuzz/${t}_fuzz" -max_total_time="$seconds" \
      -print_final_stats=1 -artifact_prefix="$crashes/" ${FUZZ_ARGS:-} \
      "$corpus" "$seeds/$t" "${extra[@]}" 2>"$build_dir/$t.log"; then
    tail -n 60 "$build_dir/$t.log"
    echo "fuzz $t: FAILED (inputs in $crashes)"
    status=1
    continue
  fi
  grep -E '^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)' \
    "$build_dir/$t.log" | sed "s/^/$t /"
done
exit $status
