"""Shared matplotlib settings so every figure looks alike and is byte-stable."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from reprise.policies.registry import policy_colours

REPRODUCED = "#3b6ea8"
PUBLISHED = "#d1495b"
COMPLETION_MARK: dict[str, Any] = {"color": "#222222", "linestyle": "--", "linewidth": 1.3}
"""The completion-based ratio's mark: dark and dashed, drawn a little wider than its bar."""


def new_figure(width: float = 7.0, height: float = 3.6) -> tuple[Figure, Axes]:
    fig, axes = new_grid(1, 1, width, height)
    return fig, axes[0][0]


def new_grid(
    nrows: int, ncols: int, width: float, height: float, share: bool = False
) -> tuple[Figure, Any]:
    """A figure of nrows x ncols panels (a 2-d array of Axes), optionally sharing both axes."""
    plt.rcParams.update({"font.size": 10, "svg.hashsalt": "reprise", "pdf.fonttype": 42})
    return plt.subplots(
        nrows,
        ncols,
        figsize=(width, height),
        sharex=share,
        sharey=share,
        layout="constrained",
        squeeze=False,
    )


def save(fig: Figure, pdf: Path, png: Path) -> None:
    """Write both formats without timestamps, so reruns produce identical bytes."""
    pdf.parent.mkdir(parents=True, exist_ok=True)
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(pdf, metadata={"CreationDate": None, "ModDate": None, "Producer": "reprise"})
    fig.savefig(png, dpi=150, metadata={"Software": "reprise"})
    plt.close(fig)


PALETTE = ("#3b6ea8", "#e39c37", "#5a9e4b", "#8c5fa8", "#c44e52", "#4fa3a5", "#7f7f7f")


def policy_colors(policies: list[str]) -> dict[str, str]:
    """Each policy's colour from its registry entry; one not registered takes a palette colour."""
    known = policy_colours()
    return {p: known.get(p, PALETTE[i % len(PALETTE)]) for i, p in enumerate(policies)}


def seeds_of(rows: Sequence[Mapping[str, str]]) -> str:
    """How many seeds the rows' runs used: "3", or "2-3" where it varies."""
    counts = sorted({len(r["seeds"].split(";")) for r in rows if r.get("seeds")})
    if not counts:
        return "1"
    return str(counts[0]) if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"
