"""Cluster efficiency over time (Figure 10), sampled the way upstream's plot_fig10.py does."""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path

from reprise.plots.style import new_figure, policy_colors, save

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


def plot_efficiency(
    curves: Mapping[str, Sequence[tuple[float, float]]],
    labels: Mapping[str, str],
    title: str,
    pdf: Path,
    png: Path,
) -> None:
    colors = policy_colors(list(curves))
    fig, ax = new_figure(height=3.4)
    for policy, points in curves.items():
        if not points:
            continue
        xs, ys = zip(*points, strict=True)
        ax.step(xs, ys, where="post", color=colors[policy], label=labels.get(policy, policy))
    ax.set_ylim(0, 0.35)
    ax.set_xlabel("Time (hours)")
    ax.set_ylabel("Cluster efficiency")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, ncols=3, frameon=False)
    ax.grid(alpha=0.3)
    save(fig, pdf, png)
