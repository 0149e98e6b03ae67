#!/usr/bin/env bash
# Fails when a folder includes a layer above it (layers: docs/design.md).
# CMake accepts cycles between static libraries silently; this does not.
# Usage: layering_test.sh [SOURCE_ROOT]
set -u
root=${1:-$(cd "$(dirname "$0")/.." && pwd)}
cd "$root" || exit 2
violations=0

# forbid FOLDER REGEX WHY [EXCLUDED_FILE_REGEX]
forbid() {
  local folder=$1 pattern=$2 why=$3 exclude=${4:-'^$'}
  [ -d "$folder" ] || return 0
  local hits
  hits=$(grep -rnE --include='*.h' --include='*.cc' --include='*.cu' \
    "^[[:space:]]*#[[:space:]]*include[[:space:]]*[<\"]($pattern)" "$folder" |
    grep -vE "$exclude")
  if [ -n "$hits" ]; then
    echo "layering violation: $why"
    echo "$hits" | sed 's/^/  /'
    violations=$((violations + 1))
  fi
}

torch='torch/|ATen/|c10/'
grpc='grpcpp/|grpc/|.*\.grpc\.pb\.h'
forbid common "models/|partitioner/|edge/|cloud/|tools/" "common is layer 1"
forbid common "$torch" "common must not include LibTorch"
forbid common "$grpc" "only common/grpc_*.{h,cc} (tandem::common_grpc) may include gRPC" '^common/grpc_(status|server|tls)\.'
forbid models "partitioner/|edge/|cloud/|tools/" "models is layer 2"
forbid models "$grpc" "models must not include gRPC"
forbid partitioner "models/|edge/|cloud/|tools/" "partitioner is layer 2, sibling of models"
forbid partitioner "$torch|$grpc" "partitioner is pure: no LibTorch, no gRPC"
forbid edge "cloud/|tools/" "edge must not include cloud"
forbid cloud "edge/|tools/" "cloud must not include edge"
forbid edge/sdk "$torch|models/" "the client SDK links gRPC and protos only"

if [ "$violations" -ne 0 ]; then
  echo "$violations layering rule(s) broken"
  exit 1
fi
echo "layering: all rules hold"
