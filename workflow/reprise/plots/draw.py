"""Pick the drawing for a figure from its configured plot kind."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from reprise.analysis.tables import read_table
from reprise.errors import ConfigError
from reprise.plots.best_effort import plot_best_effort_mix
from reprise.plots.efficiency import plot_efficiency, read_efficiency, sample_efficiency
from reprise.plots.grouped_bars import plot_grouped_bars
from reprise.plots.ratio_bars import plot_ratio_bars
from reprise.sim.records import read_summary


def draw_figure(
    kind: str,
    table: Path,
    run_dirs: Sequence[Path],
    paper: Mapping[str, Any],
    title: str,
    pdf: Path,
    png: Path,
    notes: Sequence[str] = (),
) -> None:
    rows = read_table(table)
    if kind == "ratio_bars":
        plot_ratio_bars(rows, title, pdf, png, notes)
    elif kind == "grouped_bars":
        plot_grouped_bars(rows, title, pdf, png)
    elif kind == "best_effort_mix":
        plot_best_effort_mix(rows, paper.get("published_jct_improvement", {}), title, pdf, png)
    elif kind == "efficiency_curves":
        curves = {}
        for rundir in run_dirs:
            policy = read_summary(rundir)["policy"]
            times, ces = read_efficiency(rundir / "events.csv")
            if policy.startswith("chronus"):
                # plot_fig10.py drops Chronus' idle rows (ce == 0) before sampling
                kept = [(t, c) for t, c in zip(times, ces, strict=True) if c != 0]
                times, ces = [t for t, _ in kept], [c for _, c in kept]
            curves[policy] = sample_efficiency(times, ces)
        plot_efficiency(curves, paper["labels"], title, pdf, png)
    else:
        raise ConfigError(f"unknown plot kind {kind!r}")
