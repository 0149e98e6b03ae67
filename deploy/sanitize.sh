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
# No ThreadSanitizer run: Debian's Abseil and gRPC are not TSan-instrumented,
# so TSan cannot see absl::Mutex (every lock in Tandem) and reports each
# guarded access as a race (26 such reports in the torch-free tests, e.g.
# BlockScheduler::Pick against Insert, both under the scheduler's mutex).
# A TSan run needs Abseil and gRPC built from source with -fsanitize=thread.
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
run_tree "${TANDEM_ASAN_DIR:-build-asan}" "address,undefined" ""
echo "sanitize: clang -Wthread-safety over ${TANDEM_BUILD_DIR:-build}'s sources"
/usr/bin/python3 deploy/check_thread_safety.py "${TANDEM_BUILD_DIR:-build}"
