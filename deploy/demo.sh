#!/usr/bin/env bash
# The main job: starts a cloud server and an edge agent on loopback, classifies
# Fashion-MNIST test images through the client SDK at several split points
# (edge-only, cloud-only, middle splits; with and without early exits) and
# prints a table. Stops the servers it started.
#
# Usage: deploy/demo.sh [IMAGES]   (default 1000; build first: deploy/build.sh)
set -euo pipefail
cd "$(dirname "$0")/.."

build=${TANDEM_BUILD_DIR:-build}
images=${1:-1000}
repo=$build/model_repository
work=$(mktemp -d /tmp/tandem_demo.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

wait_for_file() {  # PATH PID
  for _ in $(seq 1 600); do
    [ -s "$1" ] && return 0
    kill -0 "$2" 2>/dev/null || { echo "demo: server exited early; see $work/*.log" >&2; cat "$work"/*.log >&2; return 1; }
    sleep 0.1
  done
  echo "demo: timed out waiting for $1" >&2
  return 1
}

echo "== Starting tandem-cloud and tandem-edge on loopback (logs in $work)"
TANDEM_MIN_LOG_LEVEL=1 "$build/cloud/tandem-cloud" --listen=127.0.0.1:0 \
  --model_repository="$repo" --port_file="$work/cloud.port" 2>"$work/cloud.log" &
pids+=($!)
wait_for_file "$work/cloud.port" "${pids[-1]}"
cloud_port=$(cat "$work/cloud.port")
TANDEM_MIN_LOG_LEVEL=1 "$build/edge/tandem-edge" --listen="unix:$work/edge.sock,127.0.0.1:0" \
  --cloud="127.0.0.1:$cloud_port" --model_repository="$repo" \
  --port_file="$work/edge.port" 2>"$work/edge.log" &
pids+=($!)
wait_for_file "$work/edge.port" "${pids[-1]}"

blocks=$(sed -n 's/^num_blocks: *\([0-9]*\).*/\1/p' "$repo/fmnist_branchy/config.pbtxt")
echo "== fmnist_branchy: $blocks blocks; $images test images per row"

# name|arguments
runs=(
  "edge-only, early exits|--split=$blocks"
  "edge-only, no exits|--split=$blocks --no_early_exits"
  "cloud-only, 8-bit pixels|--split=0 --no_early_exits"
  "cloud-only, FP32 input|--split=0 --no_early_exits --encoding=raw"
  "cloud-only, cloud exits|--split=0"
)
for k in $(seq 1 $((blocks - 1))); do
  runs+=("split $k, FP16, no exits|--split=$k --encoding=fp16 --no_early_exits")
  runs+=("split $k, INT8, early exits|--split=$k --encoding=int8")
done

results=$work/results.jsonl
for run in "${runs[@]}"; do
  name=${run%%|*}
  args=${run#*|}
  echo "   running: $name" >&2
  # shellcheck disable=SC2086
  "$build/tools/tandem" infer --edge="unix:$work/edge.sock" --model=fmnist_branchy \
    --fashion-mnist="$images" --json $args 2>>"$work/cli.log" |
    /usr/bin/python3 -c 'import json,sys; d=json.load(sys.stdin); d.pop("requests",None); d["name"]=sys.argv[1]; print(json.dumps(d))' "$name" \
    >>"$results"
done

/usr/bin/python3 - "$results" <<'PY'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
header = f"{'configuration':<30} {'accuracy':>8} {'p50 ms':>8} {'p95 ms':>8} {'bytes/req':>10} {'on edge':>8}"
print()
print(header)
print("-" * len(header))
for r in rows:
    lat = r["latency_ms"]
    print(f"{r['name']:<30} {r['accuracy']:>8.4f} {lat['p50']:>8.3f} {lat['p95']:>8.3f} "
          f"{r['bytes_per_request']:>10.0f} {100 * r['edge_share']:>7.1f}%")
print()
print("latency: client-side, SDK -> edge agent (unix socket) -> cloud (TCP loopback);")
print("on edge: share of requests answered without the cloud.")
PY
