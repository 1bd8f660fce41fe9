"""Deadline-ratio bar chart: reproduced bar, published marker, completion-based marker."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from reprise.plots.style import COMPLETION, PUBLISHED, REPRODUCED, new_figure, save


def plot_ratio_bars(
    rows: Sequence[Mapping[str, str]],
    title: str,
    pdf: Path,
    png: Path,
    notes: Sequence[str] = (),
) -> None:
    """One bar per policy, labelled from the table row itself; "not run" rows stay empty.

    A policy run with several seeds shows their mean, an error bar of one standard deviation and
    its seeds under its name. Policies in `notes` get no bar but a line under the figure (e.g. a
    second mode of a baseline).
    """
    noted = [row for row in rows if row["policy"] in notes and row["status"] == "ok"]
    rows = [row for row in rows if row["policy"] not in notes]
    fig, ax = new_figure()
    x = np.arange(len(rows))
    labels = [tick_label(row) for row in rows]
    for i, row in enumerate(rows):
        pub = float(row["published"]) if row["published"] else None
        if row["status"] == "ok":
            value = float(row["ratio_published_rule"])
            std = float(row["ratio_std"]) if row.get("ratio_std") else 0.0
            ax.bar(i, value, width=0.6, color=REPRODUCED)
            if std:
                ax.errorbar(i, value, yerr=std, color="black", capsize=3, linewidth=1)
            ax.text(i, value + std + 0.015, f"{value:.3f}", ha="center", va="bottom", fontsize=8)
            if row["ratio_completion"]:
                comp = float(row["ratio_completion"])
                ax.plot(
                    [i - 0.3, i + 0.3],
                    [comp, comp],
                    color=COMPLETION,
                    linestyle="--",
                    linewidth=1.2,
                )
        else:
            ax.text(i, 0.02, "not run", ha="center", va="bottom", rotation=90, fontsize=8)
        if pub is not None:
            ax.plot(i + 0.38, pub, marker="<", color=PUBLISHED, markersize=7)
    # legend proxies, so every entry appears exactly once whatever the rows are
    ax.bar([], [], color=REPRODUCED, label="reproduced (as-published rule)")
    ax.plot([], [], color=COMPLETION, linestyle="--", label="completion-based ratio")
    ax.plot([], [], marker="<", color=PUBLISHED, linestyle="none", label="published")
    if any(row.get("ratio_std") for row in rows if row["status"] == "ok"):
        ax.errorbar([], [], yerr=[], color="black", capsize=3, label="±1 s.d. over seeds")
    ax.legend(loc="upper left", fontsize=8, frameon=False)
    if noted:
        text = "; ".join(
            f"{row['label']}: {float(row['ratio_published_rule']):.3f} "
            f"({row['accepted']}/{row['total']}), not drawn"
            for row in noted
        )
        # as the axis label, so the layout makes room for it under the tick labels
        ax.set_xlabel(text, fontsize=7)
    ax.set_xticks(x, labels)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("Deadline satisfactory ratio")
    ax.set_title(title, fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    save(fig, pdf, png)


def tick_label(row: Mapping[str, str]) -> str:
    """Tick label: the policy's label, with the seeds of a seeded run below it."""
    seeds = row.get("seeds", "")
    if not seeds or row["status"] != "ok":
        return row["label"]
    return f"{row['label']}\nseed{'s' if ';' in seeds else ''} {seeds.replace(';', ',')}"
