#!/usr/bin/env bash
# The whole test suite: installs and builds what is missing, then runs ctest.
# Pass ctest arguments to narrow it, e.g. `deploy/test.sh -L unit`.
set -euo pipefail
cd "$(dirname "$0")/.."

build_dir=${TANDEM_BUILD_DIR:-build}
TANDEM_BUILD_DIR=$build_dir bash deploy/build.sh ${TANDEM_CMAKE_ARGS:-}
cd "$build_dir"
ctest --output-on-failure --no-tests=error -j "${TANDEM_TEST_JOBS:-2}" "$@"
