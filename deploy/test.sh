#!/usr/bin/env bash
# The whole test suite: installs and builds what is missing, runs ctest, then
# the torch-free tests again under ASan+UBSan and under TSan
# (deploy/sanitize.sh; TANDEM_SANITIZERS=0 skips them). Pass ctest arguments
# to narrow it, e.g. `deploy/test.sh -L unit` (then without sanitizers).
set -euo pipefail
cd "$(dirname "$0")/.."

build_dir=${TANDEM_BUILD_DIR:-build}
TANDEM_BUILD_DIR=$build_dir bash deploy/build.sh ${TANDEM_CMAKE_ARGS:-}
(cd "$build_dir" &&
  ctest --output-on-failure --no-tests=error -j "${TANDEM_TEST_JOBS:-2}" "$@")
if [ $# -eq 0 ] && [ "${TANDEM_SANITIZERS:-1}" != 0 ]; then
  bash deploy/sanitize.sh
fi
