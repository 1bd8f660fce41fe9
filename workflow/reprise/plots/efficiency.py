"""Cluster efficiency over time (Figure 10), sampled the way upstream's plot_fig10.py does."""

from __future__ import annotations

import csv
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from matplotlib.lines import Line2D

from reprise.plots.style import new_grid, policy_colors, save
from reprise.policies.registry import skips_idle_rounds

SAMPLE_EVERY_S = 2400
FIRST_PREVIOUS_S = -610
"""Upstream keeps a row only 2400 s after the previously kept one, starting from -610 s."""


def sample_efficiency(times: Sequence[float], ces: Sequence[float]) -> list[tuple[float, float]]:
    """(hours since the first kept row, ce) pairs with a closing zero, as the published curve."""
    kept: list[tuple[float, float]] = []
    previous = float(FIRST_PREVIOUS_S)
    for t, ce in zip(times, ces, strict=True):
        if t >= previous + SAMPLE_EVERY_S:
            kept.append((t, ce))
            previous = t
    if not kept:
        return []
    start = kept[0][0]
    points = [((t - start) / 3600, ce) for t, ce in kept]
    points.append((points[-1][0], 0.0))
    return points


def read_efficiency(events_csv: Path) -> tuple[list[float], list[float]]:
    with events_csv.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    return [float(r["time"]) for r in rows], [float(r["ce"]) for r in rows]


def efficiency_curve(path: Path, policy: str) -> list[tuple[float, float]]:
    """One policy's sampled curve from a run's events.csv or an upstream log with time and ce."""
    times, ces = read_efficiency(path)
    if skips_idle_rounds(policy):
        # plot_fig10.py drops Chronus' idle rows (ce == 0) before sampling
        kept = [(t, c) for t, c in zip(times, ces, strict=True) if c != 0]
        times, ces = [t for t, _ in kept], [c for _, c in kept]
    return sample_efficiency(times, ces)


PUBLISHED_CURVE: dict[str, Any] = {"color": "black", "linestyle": ":", "linewidth": 1.0}
"""Thin and dark over the wide, pale reproduced curve: visible where the two coincide."""

X_LIMIT_H = 120.0
"""Every curve's busy part lies in the first ~110 h; the tails that follow are annotated."""


def largest_gap(
    ours: Sequence[tuple[float, float]], theirs: Sequence[tuple[float, float]]
) -> float:
    """Largest |difference| between two step curves, read at every step of either."""

    def value_at(points: Sequence[tuple[float, float]], t: float) -> float:
        at = bisect_right([x for x, _ in points], t) - 1
        return points[at][1] if at >= 0 else 0.0

    times = sorted({x for x, _ in ours} | {x for x, _ in theirs})
    return max((abs(value_at(ours, t) - value_at(theirs, t)) for t in times), default=0.0)


def plot_efficiency(
    curves: Mapping[str, Sequence[tuple[float, float]]],
    published: Mapping[str, Sequence[tuple[float, float]]],
    rows: Sequence[Mapping[str, str]],
    title: str,
    pdf: Path,
    png: Path,
) -> None:
    """Small multiples, one panel per policy in the table's order: the reproduced curve, the
    published one (the authors' committed logs, sampled alike) and both final deadline ratios."""
    order = [r["policy"] for r in rows if r["policy"] in curves]
    by_policy = {r["policy"]: r for r in rows}
    colors = policy_colors(order)
    ncols = 3
    nrows = max(1, -(-len(order) // ncols))
    fig, axes = new_grid(nrows, ncols, 9.0, 1.9 * nrows + 0.9, share=True)
    for ax, policy in zip(axes.flat, order, strict=False):
        row = by_policy[policy]
        for points, style in (
            (curves[policy], {"color": colors[policy], "linewidth": 2.4, "alpha": 0.6}),
            (published.get(policy, []), PUBLISHED_CURVE),
        ):
            if points:
                xs, ys = zip(*points, strict=True)
                ax.step(xs, ys, where="post", **style)
        ratio = f"deadline ratio {float(row['ratio_published_rule']):.2f}"
        if row.get("published"):
            ratio += f" (published {float(row['published']):.2f})"
        ax.set_title(f"{row['label']}: {ratio}", fontsize=8)
        end = curves[policy][-1][0] if curves[policy] else 0.0
        lines = [f"last job ends at {end:.0f} h"] if end > X_LIMIT_H else []
        if published.get(policy):
            lines.append(
                f"largest gap to published: {largest_gap(curves[policy], published[policy]):.3f}"
            )
        if lines:
            ax.annotate(
                "\n".join(lines),
                xy=(1, 0.92),
                xycoords="axes fraction",
                ha="right",
                va="top",
                fontsize=7,
                color="#444444",
            )
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(order) :]:
        ax.set_visible(False)
    axes[0][0].set_xlim(0, X_LIMIT_H)
    axes[0][0].set_ylim(0, 0.32)
    for ax in axes[-1]:
        ax.set_xlabel(f"Time (hours; first {X_LIMIT_H:.0f} h shown)", fontsize=8)
    for ax in axes[:, 0]:
        ax.set_ylabel("Cluster efficiency", fontsize=8)
    fig.suptitle(title, fontsize=10)
    handles = [
        Line2D([], [], color="#888888", linewidth=2.4, alpha=0.6, label="reproduced"),
        Line2D([], [], label="published (authors' committed logs)", **PUBLISHED_CURVE),
    ]
    fig.legend(handles=handles, loc="outside lower center", ncols=2, fontsize=8, frameon=False)
    save(fig, pdf, png)
