#!/usr/bin/python3
"""Plots the cloud load benchmark (bench/load_bench, `tandem bench --scenario=load`).

usage: plot_load.py load_sweep.csv out.png
One row per model: throughput and p99 latency against concurrency, with
dynamic batching off and on.
"""
import csv
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main(path, out):
    rows = list(csv.DictReader(open(path)))
    models = list(dict.fromkeys(r["model"] for r in rows))
    fig, axes = plt.subplots(len(models), 2, figsize=(10, 3.4 * len(models)), squeeze=False)
    for i, model in enumerate(models):
        for batching, style in (("off", "o--"), ("on", "s-")):
            points = [r for r in rows if r["model"] == model and r["batching"] == batching]
            c = [int(r["concurrency"]) for r in points]
            axes[i][0].plot(c, [float(r["throughput_rps"]) for r in points], style,
                            label=f"batching {batching}")
            axes[i][1].plot(c, [float(r["p99_ms"]) for r in points], style,
                            label=f"batching {batching}")
        axes[i][0].set_ylabel(f"{model}\nthroughput (req/s)")
        axes[i][1].set_ylabel("p99 latency (ms)")
        for ax in axes[i]:
            ax.set_xscale("log", base=2)
            ax.set_xlabel("concurrent requests")
            ax.grid(True, alpha=0.3)
            ax.legend()
        axes[i][1].set_yscale("log")
    fig.suptitle("tandem-cloud under closed-loop load (one model instance)")
    fig.tight_layout()
    fig.savefig(out, dpi=110)


if __name__ == "__main__":
    main(*sys.argv[1:3])
