#!/usr/bin/python3
"""Plots the soak benchmark (bench/soak_bench).

usage: plot_soak.py soak_samples.csv out.png
Resident memory, open file descriptors and threads of the edge and the cloud
daemons against the requests served: flat lines are the goal.
"""
import csv
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main(path, out):
    rows = list(csv.DictReader(open(path)))
    done = [int(r["requests_done"]) / 1000 for r in rows]
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.6))
    for daemon, style in (("edge", "-"), ("cloud", "--")):
        for ax, key in zip(axes, ("rss_mib", "fds", "threads")):
            ax.plot(done, [float(r[f"{daemon}_{key}"]) for r in rows], style, label=daemon)
    for ax, label in zip(axes, ("resident memory (MiB)", "open file descriptors", "threads")):
        ax.set_xlabel("requests served (thousands)")
        ax.set_ylabel(label)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle("soak: daemons' resources over the run")
    fig.tight_layout()
    fig.savefig(out, dpi=110)


if __name__ == "__main__":
    main(*sys.argv[1:3])
