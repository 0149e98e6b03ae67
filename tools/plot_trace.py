#!/usr/bin/python3
"""Plots `tandem bench --scenario=trace` per-request latency over the trace.

usage: plot_trace.py trace_requests.csv out.png [title]
Top: latency per request (log scale) of each reported policy; bottom: the
uplink rate and the split the adaptive policy chose.
"""
import csv
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

POLICIES = ["edge_only", "cloud_only", "cloud_only_uint8", "static_split", "adaptive"]


def rolling_mean(values, window):
    """Early exits make latency bimodal: a mean shows the mix, a median jumps."""
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def main(path, out, title="trace"):
    every = list(csv.DictReader(open(path)))
    rows = [r for r in every if r["ok"] == "1"]
    failed = [r for r in every if r["ok"] != "1"]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(11, 7), sharex=True,
                                      gridspec_kw={"height_ratios": [3, 1.4]})
    for i, name in enumerate(POLICIES):
        mine = [r for r in rows if r["policy"] == name]
        if not mine:
            continue
        t = [float(r["t_s"]) for r in mine]
        ms = [float(r["latency_ms"]) for r in mine]
        color = f"C{i}"
        top.scatter(t, ms, s=2, color=color, alpha=0.25, linewidths=0)
        top.plot(t, rolling_mean(ms, 40), color=color, linewidth=2 if name == "adaptive" else 1.2,
                 label=f"{name} (rolling mean)")
    for i, name in enumerate(POLICIES):
        # Failed requests, at the deadline (the CSV's latency for them).
        mine = [r for r in failed if r["policy"] == name]
        if mine:
            top.scatter([float(r["t_s"]) for r in mine], [float(r["latency_ms"]) for r in mine],
                        s=14, marker="x", color=f"C{i}", label=f"{name} failed (at deadline)")
    top.set_yscale("log")
    top.set_ylabel("latency per request (ms)\n(dots: requests)")
    top.set_title(f"{title}: per-request latency over the rate trace")
    top.legend(loc="upper left", fontsize=8)
    top.grid(True, which="both", alpha=0.3)
    adaptive = [r for r in rows if r["policy"] == "adaptive"]
    t = [float(r["t_s"]) for r in adaptive]
    bottom.step(t, [int(r["split"]) for r in adaptive], where="post", color="C4",
                label="adaptive split")
    bottom.set_ylabel("split point")
    bottom.yaxis.get_major_locator().set_params(integer=True)
    splits = [int(r["split"]) for r in rows if int(r["split"]) >= 0]
    if splits:
        bottom.set_ylim(-0.3, max(splits) + 0.3)
    rate_axis = bottom.twinx()
    rate_axis.step([float(r["t_s"]) for r in rows], [float(r["rate_mbit"]) for r in rows],
                   where="post", color="gray", alpha=0.6, label="uplink Mbit/s")
    rate_axis.set_yscale("log")
    rate_axis.set_ylabel("uplink (Mbit/s)")
    bottom.set_xlabel("time (s)")
    bottom.legend(loc="upper left", fontsize=8)
    rate_axis.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)


if __name__ == "__main__":
    main(*sys.argv[1:])
