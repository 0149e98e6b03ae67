#!/usr/bin/env bash
# Installs the Debian 12 packages Tandem builds, tests and runs with.
# Idempotent: packages already present are left alone; safe to run repeatedly.
set -euo pipefail

packages=(
  # Toolchain. clang and its runtimes: the sanitizer trees and the fuzz
  # targets (deploy/sanitize.sh, tests/fuzz/run.sh).
  build-essential cmake ninja-build pkg-config git clang-14 libclang-rt-14-dev
  zstd
  # Runtime libraries and their headers.
  libtorch-dev libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev
  protobuf-compiler libabsl-dev libzstd-dev zlib1g-dev libpng-dev
  # The daemons' Prometheus /metrics endpoint.
  libcpp-httplib-dev
  # TLS: certificate checks, and the test CA deploy/make_test_ca.sh makes.
  libssl-dev openssl
  # Tests and benchmarks.
  libgtest-dev libgmock-dev libbenchmark-dev python3-grpcio python3-protobuf
  # Deployment tests: manifest parsing, and a Debian root with the runtime
  # image's packages (tests/deploy/, no container engine needed).
  python3-yaml debootstrap
  # A real Prometheus scrapes both daemons in the metrics test.
  prometheus
  # Data and model tooling.
  dataset-fashion-mnist python3-torch python3-numpy
  # Models users bring (the zoo: torchvision's AlexNet and VGG-16).
  python3-torchvision
  # Benchmarks: link emulation and plots.
  iproute2 python3-matplotlib
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install_deps: all ${#packages[@]} packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "install_deps: installing ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
