#!/usr/bin/env bash
# The README's first command: installs the Debian packages, builds everything
# (training the Fashion-MNIST model the first time, a few minutes on 2 cores)
# and runs the demo (deploy/demo.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/build.sh
bash deploy/demo.sh "$@"
