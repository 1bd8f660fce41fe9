"""Pick the drawing for a figure from its configured plot kind."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from reprise.analysis.tables import read_table
from reprise.errors import ConfigError
from reprise.plots.best_effort import plot_best_effort_mix
from reprise.plots.efficiency import efficiency_curve, plot_efficiency
from reprise.plots.grouped_bars import plot_grouped_bars
from reprise.plots.ratio_bars import plot_ratio_bars
from reprise.records.reader import read_run


def draw_figure(
    kind: str,
    table: Path,
    run_dirs: Sequence[Path],
    paper: Mapping[str, Any],
    title: str,
    pdf: Path,
    png: Path,
    notes: Sequence[str] = (),
    published_logs: Sequence[Path] = (),
) -> None:
    """Draw `kind` from the figure's table; `published_logs` are the upstream files that
    `published_curves` in the paper file names (Figure 10)."""
    rows = read_table(table)
    if kind == "ratio_bars":
        plot_ratio_bars(rows, title, pdf, png, notes)
    elif kind == "grouped_bars":
        plot_grouped_bars(rows, title, pdf, png, paper.get("group_axis", ""))
    elif kind == "best_effort_mix":
        plot_best_effort_mix(rows, paper.get("published_jct_improvement", {}), title, pdf, png)
    elif kind == "efficiency_curves":
        curves = {}
        for rundir in run_dirs:
            policy = read_run(rundir).policy
            curves[policy] = efficiency_curve(rundir / "events.csv", policy)
        published = {
            policy: efficiency_curve(_log_of(published_logs, rel), policy)
            for policy, rel in paper.get("published_curves", {}).items()
        }
        plot_efficiency(curves, published, rows, title, pdf, png)
    else:
        raise ConfigError(f"unknown plot kind {kind!r}")


def _log_of(logs: Sequence[Path], relative: str) -> Path:
    for path in logs:
        if path.as_posix().endswith(relative):
            return path
    raise ConfigError(
        f"published curve {relative!r} (published_curves in the paper file) is not among the "
        "figure's inputs; list it in config/upstream.yaml"
    )
