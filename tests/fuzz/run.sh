#!/usr/bin/env bash
# Fuzzes Tandem's input handling for SECONDS in all: builds the libFuzzer
# targets (clang 14, ASan + UBSan) in a tree of their own, then runs each
# for an equal share of the time from its seed corpus, and prints the
# executions per target and in all. A crash, leak, sanitizer report or
# timeout fails the run and leaves the input that caused it in the build
# tree (fuzz-<target>-crash-*); reproduce with `<target>_fuzzer FILE`.
#
#   tests/fuzz/run.sh SECONDS            (default build tree: build-fuzz/)
#   TANDEM_FUZZ_BUILD=DIR tests/fuzz/run.sh 600
#
# Needs clang-14 and libclang-rt-14-dev (Debian), besides the build's deps.
set -euo pipefail
seconds=${1:?usage: run.sh SECONDS}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${TANDEM_FUZZ_BUILD:-$root/build-fuzz}
targets=(tensor_decode request config)

if [ ! -f "$build/build.ninja" ]; then
  mkdir -p "$build"
  CC=clang-14 CXX=clang++-14 cmake -S "$root" -B "$build" -G Ninja \
    -DTANDEM_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >"$build/cmake.log" 2>&1 ||
    { cat "$build/cmake.log" >&2; exit 1; }
fi
echo "fuzz: building ${targets[*]} in $build" >&2
ninja -C "$build" "${targets[@]/%/_fuzzer}" >&2

share=$((seconds / ${#targets[@]}))
[ "$share" -ge 1 ] || share=1
total=0
failed=0
for t in "${targets[@]}"; do
  work=$(mktemp -d)
  log="$build/fuzz-$t.log"
  echo "fuzz: $t for ${share}s (log $log)" >&2
  status=0
  # The fresh work directory takes new inputs; the seed corpus is read only.
  "$build/tests/fuzz/${t}_fuzzer" -max_total_time="$share" -timeout=10 \
    -rss_limit_mb=4096 -print_final_stats=1 \
    -artifact_prefix="$build/fuzz-$t-" "$work" "$here/corpus/$t" \
    >"$log" 2>&1 || status=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  runs=${runs:-0}
  total=$((total + runs))
  if [ "$status" -ne 0 ]; then
    failed=1
    echo "$t: FAILED after $runs executions (exit $status):" >&2
    grep -E "ERROR|SUMMARY|Test unit written" "$log" | head -5 >&2
  else
    echo "$t: $runs executions, $(find "$work" -type f | wc -l) corpus inputs, no crash"
  fi
  rm -rf "$work"
done
echo "total: $total executions in about ${seconds}s"
exit "$failed"
