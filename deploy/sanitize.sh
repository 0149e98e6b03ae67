#!/usr/bin/env bash
# The torch-free tests under sanitizers, each in a clang build tree of its own:
#   build-asan/  AddressSanitizer + UndefinedBehaviorSanitizer
#   build-tsan/  ThreadSanitizer, and clang's -Wthread-safety, which checks
#                the ABSL_GUARDED_BY / ABSL_LOCKS_EXCLUDED annotations
# deploy/test.sh runs it after the main suite (TANDEM_SANITIZERS=0 skips it).
#
# Left out: everything that links LibTorch (the model code, both daemons and
# the integration tests that start them). A sanitized build of those
# translation units takes ~25 minutes per tree on 2 cores, and LibTorch's
# own OpenMP runtime is not TSan-instrumented; they run unsanitized in the
# main suite. Covered here: common (access control, metrics, subprocesses),
# the torch-free codec checks, the partitioner, the real-time scheduler,
# admission and model scaler, the client SDK against in-process servers, and
# the CLI.
set -euo pipefail
cd "$(dirname "$0")/.."

tests=(common_test metrics_test grpc_status_test partitioner_test
       block_scheduler_test client_test cli_test image_io_test
       config_samples_test)
pattern="^($(IFS='|'; echo "${tests[*]}"))\\."

run_tree() {  # run_tree DIR SANITIZERS EXTRA_CXX_FLAGS
  local dir=$1 sanitize=$2 flags=$3
  if [ ! -f "$dir/build.ninja" ]; then
    CC=clang-14 CXX=clang++-14 cmake -S . -B "$dir" -G Ninja \
      -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTANDEM_SANITIZE="$sanitize" \
      -DCMAKE_CXX_FLAGS="$flags" >/dev/null
  fi
  echo "sanitize: building ${#tests[@]} test binaries with -fsanitize=$sanitize in $dir"
  cmake --build "$dir" -j "${TANDEM_JOBS:-$(nproc)}" --target "${tests[@]}"
  echo "sanitize: running them"
  (cd "$dir" && ctest --output-on-failure --no-tests=error \
     -j "${TANDEM_TEST_JOBS:-2}" -R "$pattern")
}

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1}
run_tree "${TANDEM_ASAN_DIR:-build-asan}" "address,undefined" ""
run_tree "${TANDEM_TSAN_DIR:-build-tsan}" "thread" "-Wthread-safety"
