#!/usr/bin/env bash
# Sanitizers and clang's lock analysis, after the main suite (deploy/test.sh
# runs it; TANDEM_SANITIZERS=0 skips it):
#   1. build-asan/: the torch-free test binaries built with clang under
#      AddressSanitizer + UndefinedBehaviorSanitizer, and run.
#   2. clang's -Wthread-safety over every source of the main build tree
#      (deploy/check_thread_safety.py, syntax only), so the ABSL_GUARDED_BY /
#      ABSL_LOCKS_EXCLUDED annotations are checked everywhere.
#
# Left out of (1): everything that links LibTorch (the model code, both
# daemons and the integration tests that start them): a sanitized tree with
# those takes ~25 minutes to build on 2 cores; they run unsanitized in the
# main suite. Covered: common (access control, metrics, subprocesses), the
# torch-free codec checks, the partitioner, the real-time scheduler,
# admission and model scaler, the client SDK against in-process servers, and
# the CLI.
#
#   3. build-tsan/: ThreadSanitizer over the torch-free tests that do not
#      link gRPC, against an Abseil built with TSan from Debian's source of
#      the installed version (deploy/build_tsan_absl.sh, cached in
#      build-tsan/absl): Debian's libabsl is not instrumented, so TSan could
#      not see absl::Mutex and would report every guarded access as a race.
#      Covered: common (timers, subprocesses, access control, daemon
#      signals), metrics, the partitioner, the real-time scheduler, admission
#      and model scaler, config samples. Left out: the SDK, CLI and gRPC
#      status tests, which link Debian's gRPC (built against the
#      uninstrumented Abseil; one process cannot hold both). Skipped, and
#      said so, when Abseil's source cannot be fetched (exit 77 of the
#      script).
set -euo pipefail
cd "$(dirname "$0")/.."

asan_tests=(common_test metrics_test grpc_status_test partitioner_test
            block_scheduler_test client_test cli_test image_io_test
            config_samples_test)
tsan_tests=(common_test metrics_test partitioner_test block_scheduler_test
            config_samples_test)

run_tree() {  # run_tree DIR SANITIZERS EXTRA_CMAKE_ARGS TESTS...
  local dir=$1 sanitize=$2 extra=$3
  shift 3
  local tests=("$@")
  local pattern
  pattern="^($(IFS='|'; echo "${tests[*]}"))\\."
  if [ ! -f "$dir/build.ninja" ]; then
    # shellcheck disable=SC2086 # extra holds separate cmake arguments
    CC=clang-14 CXX=clang++-14 cmake -S . -B "$dir" -G Ninja \
      -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTANDEM_SANITIZE="$sanitize" \
      $extra >/dev/null
  fi
  echo "sanitize: building ${#tests[@]} test binaries with -fsanitize=$sanitize in $dir"
  cmake --build "$dir" -j "${TANDEM_JOBS:-$(nproc)}" --target "${tests[@]}"
  echo "sanitize: running them"
  (cd "$dir" && ctest --output-on-failure --no-tests=error \
     -j "${TANDEM_TEST_JOBS:-2}" -R "$pattern")
}

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
run_tree "${TANDEM_ASAN_DIR:-build-asan}" "address,undefined" "" "${asan_tests[@]}"

export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1:suppressions=$PWD/tests/tsan.supp}
tsan_dir=${TANDEM_TSAN_DIR:-build-tsan}
absl_rc=0
bash deploy/build_tsan_absl.sh "$tsan_dir/absl" || absl_rc=$?
if [ "$absl_rc" = 77 ]; then
  echo "sanitize: TSan SKIPPED: no TSan-built Abseil (its source could not be fetched)"
elif [ "$absl_rc" != 0 ]; then
  echo "sanitize: building Abseil with TSan failed ($absl_rc)" >&2
  exit "$absl_rc"
else
  absl_prefix=$(realpath "$tsan_dir/absl/prefix")
  run_tree "$tsan_dir/tree" thread "-DCMAKE_PREFIX_PATH=$absl_prefix" \
    "${tsan_tests[@]}" || exit $?
  # The tree must have found the instrumented Abseil, not Debian's.
  grep -q "^absl_DIR:PATH=$absl_prefix/" "$tsan_dir/tree/CMakeCache.txt" || {
    echo "sanitize: the TSan tree did not use $absl_prefix" >&2
    exit 1
  }
fi
echo "sanitize: clang -Wthread-safety over ${TANDEM_BUILD_DIR:-build}'s sources"
/usr/bin/python3 deploy/check_thread_safety.py "${TANDEM_BUILD_DIR:-build}"
