"""Grouped bars (Figures 8b and 9): one group per trace or cluster, one bar per policy."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from reprise.plots.style import PUBLISHED, new_figure, policy_colors, save


def plot_grouped_bars(rows: Sequence[Mapping[str, str]], title: str, pdf: Path, png: Path) -> None:
    groups = list(dict.fromkeys(row["group"] for row in rows))
    policies = list(dict.fromkeys(row["policy"] for row in rows))
    labels = {row["policy"]: row["label"] for row in rows}
    colors = policy_colors(policies)
    width = 0.8 / max(len(policies), 1)
    fig, ax = new_figure(width=max(7.0, 0.9 * len(groups) + 2), height=3.8)
    for row in rows:
        gi = groups.index(row["group"])
        pi = policies.index(row["policy"])
        x = gi + (pi - (len(policies) - 1) / 2) * width
        if row["status"] == "ok":
            std = float(row["ratio_std"]) if row["ratio_std"] else 0.0
            ax.bar(
                x,
                float(row["ratio_published_rule"]),
                width=width,
                color=colors[row["policy"]],
                yerr=std or None,
                capsize=2,
            )
        if row["published"]:
            ax.plot(x, float(row["published"]), marker="_", color=PUBLISHED, markersize=8, mew=2)
    # explicit handles: an empty bar() call gives a legend patch in the default colour
    handles: list[Patch | Line2D] = [
        Patch(color=colors[policy], label=labels[policy]) for policy in policies
    ]
    handles.append(
        Line2D([], [], marker="_", color=PUBLISHED, linestyle="none", mew=2, label="published")
    )
    ax.set_xticks(range(len(groups)), groups, rotation=30 if len(groups) > 6 else 0)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("Deadline satisfactory ratio")
    ax.set_title(title, fontsize=10)
    ax.legend(handles=handles, fontsize=7, ncols=4, loc="upper left", frameon=False)
    ax.grid(axis="y", alpha=0.3)
    save(fig, pdf, png)
