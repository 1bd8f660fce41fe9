"""Grouped bars (Figures 8b and 9): one group per trace or cluster, one bar per policy."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from matplotlib.container import ErrorbarContainer
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from reprise.plots.style import (
    COMPLETION_MARK,
    PUBLISHED,
    new_figure,
    policy_colors,
    save,
    seeds_of,
)

ABOVE_ERRORBARS = 5
"""zorder of the published and completion marks: over bars and error-bar caps alike."""


def plot_grouped_bars(
    rows: Sequence[Mapping[str, str]], title: str, pdf: Path, png: Path, xlabel: str = ""
) -> None:
    """Bars of the reproduced ratio, ±1 s.d. over seeds where there are several, a published
    mark beside each bar and a completion-based mark across it."""
    groups = list(dict.fromkeys(row["group"] for row in rows))
    group_labels = {row["group"]: row.get("group_label") or row["group"] for row in rows}
    policies = list(dict.fromkeys(row["policy"] for row in rows))
    labels = {row["policy"]: row["label"] for row in rows}
    colors = policy_colors(policies)
    width = 0.8 / max(len(policies), 1)
    fig, ax = new_figure(width=max(7.0, 0.9 * len(groups) + 2), height=3.8)
    has_std = has_completion = False
    for row in rows:
        gi = groups.index(row["group"])
        pi = policies.index(row["policy"])
        x = gi + (pi - (len(policies) - 1) / 2) * width
        if row["status"] == "ok":
            value = float(row["ratio_published_rule"])
            std = float(row["ratio_std"]) if row.get("ratio_std") else 0.0
            has_std = has_std or bool(std)
            ax.bar(x, value, width=width, color=colors[row["policy"]])
            if std:
                ax.errorbar(x, value, yerr=std, color="black", capsize=2, linewidth=0.8)
            if row.get("ratio_completion"):
                has_completion = True
                comp = float(row["ratio_completion"])
                # dark on the bar's colour, so it shows where it equals the bar's top too
                ax.plot(
                    [x - width / 2, x + width / 2],
                    [comp, comp],
                    zorder=ABOVE_ERRORBARS,
                    **COMPLETION_MARK,
                )
        if row.get("published"):
            # beside the bar's right edge, pointing at it: never under an error-bar cap
            ax.plot(
                x + width / 2,
                float(row["published"]),
                marker="<",
                color=PUBLISHED,
                markersize=5,
                markeredgecolor="white",
                markeredgewidth=0.5,
                linestyle="none",
                zorder=ABOVE_ERRORBARS,
            )
    # explicit handles: an empty bar() call gives a legend patch in the default colour
    handles: list[Patch | Line2D | ErrorbarContainer] = [
        Patch(color=colors[policy], label=labels[policy]) for policy in policies
    ]
    handles.append(Line2D([], [], marker="<", color=PUBLISHED, linestyle="none", label="published"))
    if has_completion:
        handles.append(Line2D([], [], label="completion-based ratio", **COMPLETION_MARK))
    if has_std:
        seeds = seeds_of(rows)
        handles.append(
            ax.errorbar(
                [], [], yerr=[], color="black", capsize=2, label=f"±1 s.d. over {seeds} seeds"
            )
        )
    ticks = [group_labels[g] for g in groups]
    crowded = len(groups) > 6 and max(map(len, ticks)) > 6
    ax.set_xticks(range(len(groups)), ticks, rotation=30 if crowded else 0)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("Deadline satisfactory ratio")
    if xlabel:
        ax.set_xlabel(xlabel)
    ax.set_title(title, fontsize=10)
    # under the axes: above them it would cover the tallest bars
    fig.legend(handles=handles, fontsize=7, ncols=4, loc="outside lower center", frameon=False)
    ax.grid(axis="y", alpha=0.3)
    save(fig, pdf, png)
