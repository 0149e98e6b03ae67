#!/usr/bin/python3
"""Plots `tandem bench --scenario=mixed`: miss rate per task per policy.

usage: plot_mixed.py mixed_bench.json OUT_DIR
Writes OUT_DIR/mixed_load<L>_<cloud|nocloud>.png for every (load, cloud) cell
of the report: grouped bars, one group per task (most critical first), one
bar per policy; the legend gives each policy's miss rate over all tasks.
"""
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def png_name(cell):
    # %g, as the bench names the cells: 0.6, 0.95, 1.4.
    return "mixed_load%s_%s.png" % ("%g" % cell["load"], "cloud" if cell["cloud"] else "nocloud")


def plot_cell(cell, task_set, out_path, title):
    tasks = sorted(task_set, key=lambda t: -t["criticality"])
    policies = list(cell["policies"].keys())
    fig, ax = plt.subplots(figsize=(10, 4.8))
    width = 0.8 / max(1, len(policies))
    highest = 0.0
    for i, name in enumerate(policies):
        figures = cell["policies"][name]
        raw = [figures["tasks"].get(t["name"], {}).get("miss_rate") for t in tasks]
        rates = [r if r is not None else 0.0 for r in raw]
        xs = [k + (i - (len(policies) - 1) / 2) * width for k in range(len(tasks))]
        overall = figures.get("miss_rate")
        label = name if overall is None else "%s (all: %.3f)" % (name, overall)
        bars = ax.bar(xs, rates, width=width, label=label, color="C%d" % i,
                      edgecolor="black" if name == "tandem_rt" else None,
                      linewidth=1.2 if name == "tandem_rt" else 0)
        # Values on the bars: a 0 is a result too, and must be seen.
        ax.bar_label(bars, labels=["n/a" if r is None else "%.3f" % r for r in raw], rotation=90, fontsize=6, padding=2)
        highest = max([highest] + rates)
    ax.set_xticks(range(len(tasks)))
    ax.set_xticklabels(["%s\n(crit. %d)" % (t["name"], t["criticality"]) for t in tasks])
    ax.set_ylabel("miss rate (failed or late / released)")
    ax.set_ylim(0, min(1.05, max(0.05, 1.35 * highest)))
    ax.set_title(title)
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=8, ncol=2, loc="upper right")
    fig.tight_layout()
    fig.savefig(out_path, dpi=110)
    plt.close(fig)


def main(report_path, out_dir):
    report = json.load(open(report_path))
    for cell in report["loads"]:
        title = "load %g, %s cloud, edge %gx slower: miss rate per task" % (
            cell["load"], "with" if cell["cloud"] else "without", report["edge_slowdown"])
        out_path = os.path.join(out_dir, png_name(cell))
        plot_cell(cell, report["task_set"], out_path, title)
        print(out_path)


if __name__ == "__main__":
    main(*sys.argv[1:])
