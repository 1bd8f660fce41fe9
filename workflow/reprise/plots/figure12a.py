"""Figure 12(a): profiling seconds per model, measured beside published (log scale: tiny CPU
models on a few slots against real models on up to 64 A100s)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from reprise.plots.style import PALETTE, new_figure, save


def plot_figure12a(table: Path, pdf: Path, png: Path) -> None:
    rows = pd.read_csv(table)
    x = np.arange(len(rows))
    fig, ax = new_figure(7.0, 3.6)
    cluster = ", ".join(sorted(set(rows["cluster"].astype(str))))
    ax.bar(
        x - 0.2, rows["measured_s"], 0.4, color=PALETTE[0], label=f"measured ({cluster})", zorder=2
    )
    ax.bar(x + 0.2, rows["published_s"], 0.4, color="#bbbbbb", label="published (A100)", zorder=2)
    ax.set_yscale("log")
    ax.set_xticks(x, rows["model"])
    ax.set_ylabel("profiling time (s)")
    ax.set_title("Figure 12(a): throughput profiling time per model")
    ax.grid(axis="y", color="#dddddd", zorder=0)
    ax.legend(fontsize=8)
    save(fig, pdf, png)
