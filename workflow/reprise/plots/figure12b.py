"""Figure 12(b): seconds from a scaling or migration command until the job trains again, per model
and case, measured (bars, min-max whiskers) beside the published values (black ticks)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from reprise.plots.style import PALETTE, new_figure, save


def plot_figure12b(table: Path, pdf: Path, png: Path) -> None:
    rows = pd.read_csv(table)
    cases = list(dict.fromkeys(rows["case"]))
    models = list(dict.fromkeys(rows["model"]))
    labels = dict(zip(rows["case"], rows["case_label"], strict=False))
    fig, ax = new_figure(9.0, 3.8)
    width = 0.8 / len(models)
    x = np.arange(len(cases))
    for i, model in enumerate(models):
        mine = rows[rows["model"] == model].set_index("case").reindex(cases)
        pos = x - 0.4 + width * (i + 0.5)
        mean = mine["measured_mean_s"].to_numpy(dtype=float)
        low = mean - mine["measured_min_s"].to_numpy(dtype=float)
        high = mine["measured_max_s"].to_numpy(dtype=float) - mean
        ax.bar(pos, mean, width, color=PALETTE[i % len(PALETTE)], label=model, zorder=2)
        ax.errorbar(pos, mean, yerr=[low, high], fmt="none", ecolor="#333333", lw=0.8, zorder=3)
        published = mine["published_s"].to_numpy(dtype=float)
        ax.scatter(pos, published, marker="_", s=120, color="k", zorder=4, linewidths=2)
    measured = rows.groupby("case")["measured_n"].sum().reindex(cases)
    top = float(np.nanmax(rows[["measured_max_s", "published_s"]].to_numpy(dtype=float)))
    for xi, case in zip(x, cases, strict=True):
        if measured[case] == 0:
            ax.annotate("not measured here", (xi, top * 0.05), ha="center", fontsize=8)
    ax.scatter([], [], marker="_", s=120, color="k", linewidths=2, label="published")
    ax.set_xticks(x, [labels.get(c, c) for c in cases])
    ax.set_ylabel("seconds until stable")
    cluster = ", ".join(sorted(set(rows["cluster"].astype(str))))
    ax.set_title(f"Figure 12(b): scaling and migration overhead ({cluster})")
    ax.grid(axis="y", color="#dddddd", zorder=0)
    ax.legend(fontsize=7, ncol=len(models) + 1, loc="upper left")
    save(fig, pdf, png)
