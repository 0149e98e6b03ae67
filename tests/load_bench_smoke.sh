#!/bin/bash
# The cloud load benchmark end to end, small: a real tandem-cloud, two
# concurrency levels, batching off and on. Checks that the report is complete
# and that batching formed batches under concurrency.
#   load_bench_smoke.sh LOAD_BENCH MODEL_REPOSITORY CLOUD_BINARY
set -euo pipefail
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
"$1" --models=fmnist_branchy --model_repository="$2" --cloud_binary="$3" \
    --concurrency=1,8 --window_s=0.5 --max_batch_size=8 \
    --max_queue_delay_us=5000 --out_dir="$out" > "$out/stdout.json"
/usr/bin/python3 - "$out" <<'PY'
import json, sys
out = sys.argv[1]
report = json.load(open(f"{out}/load_bench.json"))
assert report == json.load(open(f"{out}/stdout.json")), "stdout and file differ"
model = report["models"]["fmnist_branchy"]
for key in ("batching_speedup_at_16", "batching_vs_ceiling_at_16",
            "p99_over_p50_at_80pct", "replica_scaling"):
    assert key in model["targets"], key
assert len(model["ceiling"]) == 8
for mode in ("batching_off", "batching_on"):
    points = model[mode]
    assert [p["concurrency"] for p in points] == [1, 8], points
    for p in points:
        assert p["failed"] == 0 and p["throughput_rps"] > 0, p
off8 = model["batching_off"][1]
on8 = model["batching_on"][1]
assert abs(off8["mean_batch_size"] - 1) < 1e-6, off8
assert on8["mean_batch_size"] > 1.5, on8
print("load bench: batch %.2f at concurrency 8, %.0f/s off, %.0f/s on"
      % (on8["mean_batch_size"], off8["throughput_rps"], on8["throughput_rps"]))
PY
