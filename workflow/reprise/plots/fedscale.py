"""The FedScale figure: test accuracy vs round per deployment, and round time per deployment and
executor count."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd

COLOURS = {"process": "tab:orange", "docker": "tab:blue", "swarm": "tab:green"}
LABELS = {
    "process": "local processes",
    "docker": "Docker (bridge)",
    "swarm": "Docker swarm (overlay)",
    "kubernetes": "Kubernetes",
}


def plot_fedscale(table: pd.DataFrame, runs: pd.DataFrame, outputs: list[Path]) -> None:
    fig, (ax_acc, ax_time) = plt.subplots(1, 2, figsize=(11, 4.2))
    for keys, group in table.groupby(["deployment", "executors", "seed"], sort=True):
        deployment, executors, seed = keys
        tested = group.dropna(subset=["test_top1"])
        label = f"{LABELS.get(str(deployment), deployment)}, {executors} exec., seed {seed}"
        colour = COLOURS.get(str(deployment))
        ax_acc.plot(tested["round"], tested["test_top1"], marker="o", ms=3, label=label, c=colour)
    chance = 0.1  # ten digits
    ax_acc.axhline(chance, color="grey", ls=":", lw=1)
    ax_acc.text(ax_acc.get_xlim()[0], chance, " chance", va="bottom", color="grey", fontsize=8)
    ax_acc.set_xlabel("round (test of the global model at its start)")
    ax_acc.set_ylabel("test accuracy (top-1)")
    ax_acc.set_ylim(0, 1)
    ax_acc.grid(alpha=0.3)
    ax_acc.legend(fontsize=8)
    order = {d: i for i, d in enumerate(LABELS)}
    runs = runs.sort_values(
        ["executors", "deployment"], key=lambda c: c.map(order) if c.name == "deployment" else c
    )
    names = [
        f"{LABELS.get(str(d), d)}\n{e} exec."
        for d, e in zip(runs["deployment"], runs["executors"], strict=True)
    ]
    colours = [COLOURS.get(str(d), "tab:grey") for d in runs["deployment"]]
    bars = ax_time.bar(range(len(runs)), runs["mean_round_s"], color=colours)
    for bar, ratio in zip(bars, runs["round_time_vs_process"], strict=True):
        if pd.notna(ratio):
            ax_time.annotate(
                f"x{ratio:.2f}",
                (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                ha="center",
                va="bottom",
                fontsize=8,
            )
    ax_time.set_xticks(range(len(runs)), names, fontsize=8)
    ax_time.set_ylabel("mean round time (s, wall clock)")
    ax_time.grid(axis="y", alpha=0.3)
    ax_time.set_title("round time (x = vs local processes)", fontsize=10)
    fig.suptitle("FedScale on FEMNIST-format digits: 1 aggregator + executors")
    fig.tight_layout()
    for out in outputs:
        fig.savefig(out)
    plt.close(fig)
