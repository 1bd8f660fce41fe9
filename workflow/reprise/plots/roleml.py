"""RoleML offloading figures: round time, accuracy and node CPU over one run with the offload
phases marked, and the per-phase latencies of every offload."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.patches import Rectangle

from reprise.analysis.roleml import PHASES, col

COLOURS = dict(zip(PHASES, ("#bbbbbb", "#d62728", "#ff7f0e", "#2ca02c", "#1f77b4"), strict=True))


def plot_timeline(run: Path, out: Path) -> None:
    rounds = pd.read_csv(run / "rounds.csv")
    offloads = pd.read_csv(run / "offloads.csv")
    cpu = pd.read_csv(run / "cpu.csv")
    events = pd.read_csv(run / "events.csv")
    t0 = float(col(rounds, "started").min())
    fig, axes = plt.subplots(3, 1, figsize=(9, 7), sharex=True)
    took = col(rounds, "finished") - col(rounds, "started")
    axes[0].plot(col(rounds, "finished") - t0, took, marker="o", ms=3)
    axes[0].set_ylabel("round time (s)")
    # the first round carries the actors' warm-up (connections, first torch calls): it is
    # left above the axis so the rounds around the offloads stay readable
    top = float(took[1:].max() if len(took) > 1 else took.max()) * 1.5
    axes[0].set_ylim(0, top)
    if took[0] > top:
        axes[0].annotate(f"round 0: {took[0]:.0f} s", (0, top * 0.92), fontsize=7)
    axes[1].plot(col(rounds, "finished") - t0, col(rounds, "accuracy"), marker="o", ms=3, color="k")
    axes[1].set_ylabel("test accuracy")
    for node, group in cpu.groupby("node"):
        axes[2].plot(col(group, "time") - t0, col(group, "cpu_pct"), label=str(node), lw=1)
    axes[2].set_ylabel("node CPU (% of limit)")
    axes[2].set_xlabel("time since the first round (s)")
    axes[2].legend(fontsize=7, ncol=5)
    for rec in offloads.to_dict("records"):
        start = float(rec["started"]) - t0
        for phase in PHASES:
            seconds = float(rec[phase]) if pd.notna(rec[phase]) else 0.0
            for ax in axes:
                ax.axvspan(start, start + seconds, color=COLOURS[phase], alpha=0.35, lw=0)
            start += seconds
        axes[0].annotate(
            f"{rec['trigger'][0].upper()}{rec['offload']}: {rec['source']}->{rec['node_after']}",
            # staggered heights: back-to-back offloads would print over each other
            (float(rec["started"]) - t0, top * (0.8 - 0.12 * (rec["offload"] % 4))),
            fontsize=7,
        )
    for rec in events.to_dict("records"):
        for ax in axes:
            ax.axvline(float(rec["time"]) - t0, color="purple", ls="--", lw=1)
        axes[2].annotate(str(rec["event"]), (float(rec["time"]) - t0, 5), fontsize=7)
    handles = [Rectangle((0, 0), 1, 1, color=COLOURS[p], alpha=0.5) for p in PHASES]
    axes[0].legend(handles, [p.removesuffix("_s") for p in PHASES], fontsize=7, ncol=5)
    fig.suptitle("RoleML E-Tree with role offloading (C = commanded, A = automatic)")
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)


def plot_phases(table_csv: Path, out: Path) -> None:
    table = pd.read_csv(table_csv)
    rows = table[table["row"] == "offload"]
    fig, ax = plt.subplots(figsize=(max(7.0, 0.6 * len(rows)), 4))
    # one bar per offload of every repeated run ("r0 commanded 1", ...)
    labels = [f"r{r.repetition} {r.trigger} {r.offload}" for r in rows.itertuples()]
    bottom = [0.0] * len(rows)
    for phase in PHASES:
        values = np.nan_to_num(col(rows, phase)).tolist()
        ax.bar(labels, values, bottom=bottom, color=COLOURS[phase], label=phase.removesuffix("_s"))
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    ax.set_ylabel("seconds")
    ax.tick_params(axis="x", labelrotation=60, labelsize=7)
    ax.set_title("Offload latency by phase")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
