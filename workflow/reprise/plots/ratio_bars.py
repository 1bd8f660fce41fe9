"""Deadline-ratio bar chart: reproduced bar, published marker, completion-based marker."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes

from reprise.plots.style import COMPLETION_MARK, PUBLISHED, REPRODUCED, new_figure, save

BAR_WIDTH = 0.6
SAME = 0.0005
"""Completion-based and as-published ratios closer than this print as one value."""


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
            ax.bar(i, value, width=BAR_WIDTH, color=REPRODUCED)
            if std:
                ax.errorbar(i, value, yerr=std, color="black", capsize=3, linewidth=1)
            ax.text(i, value + std + 0.015, f"{value:.3f}", ha="center", va="bottom", fontsize=8)
            if row["ratio_completion"]:
                draw_completion(ax, i, value, float(row["ratio_completion"]))
        else:
            ax.text(i, 0.02, "not run", ha="center", va="bottom", rotation=90, fontsize=8)
        if pub is not None:
            ax.plot(i + 0.4, pub, marker="<", color=PUBLISHED, markersize=7, zorder=5)
    # legend proxies, so every entry appears exactly once whatever the rows are
    ax.bar([], [], color=REPRODUCED, label="reproduced (as-published rule)")
    ax.plot(
        [],
        [],
        label="completion-based ratio (value in the bar where it differs)",
        **COMPLETION_MARK,
    )
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


def draw_completion(ax: Axes, x: float, value: float, completion: float) -> None:
    """A dashed mark a little wider than the bar, so it shows even where it equals the bar's top,
    and its value printed where it differs from the bar's (inside the bar, just under the mark)."""
    half = 0.6 * BAR_WIDTH
    ax.plot([x - half, x + half], [completion, completion], zorder=4, **COMPLETION_MARK)
    if abs(completion - value) < SAME:
        return
    inside = completion >= 0.08
    ax.text(
        x,
        completion - 0.012 if inside else completion + 0.012,
        f"{completion:.3f}",
        ha="center",
        va="top" if inside else "bottom",
        fontsize=7,
        color="white" if inside else "#222222",
        zorder=4,
    )
