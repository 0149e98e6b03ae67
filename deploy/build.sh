#!/usr/bin/env bash
# Installs what is missing, configures and builds Tandem into build/ (or
# $TANDEM_BUILD_DIR). The build also trains and exports the model repository
# (build/model_repository) the first time. Extra arguments go to CMake.
set -euo pipefail
cd "$(dirname "$0")/.."

build_dir=${TANDEM_BUILD_DIR:-build}
bash deploy/install_deps.sh

if [ ! -f "$build_dir/build.ninja" ]; then
  cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@"
fi
# Two cores, and each LibTorch translation unit wants ~1.5 GB: -j2 is right here.
cmake --build "$build_dir" -j "${TANDEM_JOBS:-$(nproc)}"
