"""Shared matplotlib settings so every figure looks alike and is byte-stable."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure

REPRODUCED = "#3b6ea8"
PUBLISHED = "#d1495b"
COMPLETION = "#8a8a8a"


def new_figure(width: float = 7.0, height: float = 3.6) -> tuple[Figure, Axes]:
    plt.rcParams.update({"font.size": 10, "svg.hashsalt": "reprise", "pdf.fonttype": 42})
    fig, ax = plt.subplots(figsize=(width, height), layout="constrained")
    return fig, ax


def save(fig: Figure, pdf: Path, png: Path) -> None:
    """Write both formats without timestamps, so reruns produce identical bytes."""
    pdf.parent.mkdir(parents=True, exist_ok=True)
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(pdf, metadata={"CreationDate": None, "ModDate": None, "Producer": "reprise"})
    fig.savefig(png, dpi=150, metadata={"Software": "reprise"})
    plt.close(fig)


PALETTE = ("#3b6ea8", "#e39c37", "#5a9e4b", "#8c5fa8", "#c44e52", "#4fa3a5", "#7f7f7f")


def policy_colors(policies: list[str]) -> dict[str, str]:
    return {p: PALETTE[i % len(PALETTE)] for i, p in enumerate(policies)}
