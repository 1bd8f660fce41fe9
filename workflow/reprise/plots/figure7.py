"""Figure 7 from its table: (a) the GPUs each policy held over Figure 6(b)'s testbed run, (b) the
jobs submitted and the jobs ElasticFlow accepted per 10 minutes, as upstream's plot_fig7a.py and
plot_fig7b.py draw them (hours on the x axis)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from reprise.data.clusters import load_cluster_spec
from reprise.plots.style import new_grid, policy_colors, save
from reprise.policies.registry import policy_labels

STEP_B_MIN = 10
"""Upstream's Figure 7(b) step (`step = 10 # step minutes`)."""
ACCEPTING_POLICY = "ef-accessctrl"
"""7(b) shows the jobs accepted in ElasticFlow's cluster experiment."""
LINESTYLES = ("-", ":", "--", "-.", (0, (5, 1)), (0, (3, 1, 1, 1)))


@dataclass(frozen=True)
class Figure7Series:
    """What the two panels plot."""

    gpus: dict[str, tuple[list[float], list[int]]]
    """Policy -> (hours, GPUs held at each step's last round)."""
    hours_b: list[float]
    submitted: list[int]
    accepted: list[int]
    """Jobs submitted and jobs ElasticFlow accepted per 7(b) step; empty without its run."""


def figure7_series(table: pd.DataFrame) -> Figure7Series:
    """The panels' series from the figure7 table (one row per policy and step)."""
    gpus: dict[str, tuple[list[float], list[int]]] = {}
    for policy, rows in table.groupby("policy", sort=False):
        gpus[str(policy)] = (
            (rows["minute"] / 60).to_list(),
            rows["gpus_in_use"].astype(int).to_list(),
        )
    ef = table[table["policy"] == ACCEPTING_POLICY]
    if ef.empty:
        return Figure7Series(gpus, [], [], [])
    bins = (ef["minute"] // STEP_B_MIN).astype(int)
    per_bin = ef.groupby(bins)[["submitted", "accepted"]].sum()
    per_bin = per_bin.reindex(range(int(bins.max()) + 1), fill_value=0)
    return Figure7Series(
        gpus,
        [b * STEP_B_MIN / 60 for b in per_bin.index],
        per_bin["submitted"].astype(int).to_list(),
        per_bin["accepted"].astype(int).to_list(),
    )


def plot_figure7(table_csv: Path, pdf: Path, png: Path, cluster_spec: Path | None = None) -> None:
    """Both panels side by side; the cluster spec's GPU count tops 7(a)'s y axis."""
    table = pd.read_csv(table_csv)
    cluster_gpus = None if cluster_spec is None else load_cluster_spec(cluster_spec).num_gpus
    series = figure7_series(table)
    labels = policy_labels()
    colours = policy_colors(list(series.gpus))
    fig, axes = new_grid(1, 2, 11.0, 3.6)
    ax = axes[0][0]
    for i, (policy, (hours, gpus)) in enumerate(series.gpus.items()):
        ax.step(
            hours,
            gpus,
            where="post",
            linestyle=LINESTYLES[i % len(LINESTYLES)],
            color=colours[policy],
            label=labels.get(policy, policy),
            linewidth=1.4,
        )
    if cluster_gpus is not None:
        ax.set_ylim(0, cluster_gpus * 1.1)
    ax.set_xlabel("time (hour)")
    ax.set_ylabel("number of allocated GPUs")
    ax.set_title("(a) GPUs allocated")
    ax.grid(color="#dddddd")
    ax.legend(fontsize=8, ncol=3)
    ax = axes[0][1]
    if series.hours_b:
        ax.plot(series.hours_b, series.submitted, color="r", label="# job submission")
        ax.plot(
            series.hours_b,
            series.accepted,
            ":",
            color="b",
            label=f"# job accepted ({labels.get(ACCEPTING_POLICY, ACCEPTING_POLICY)}, testbed)",
        )
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, f"no {ACCEPTING_POLICY} run", ha="center", transform=ax.transAxes)
    ax.set_xlabel("time (hour)")
    ax.set_ylabel(f"number of jobs per {STEP_B_MIN} min")
    ax.set_title("(b) jobs submitted and accepted")
    ax.grid(color="#dddddd")
    fig.suptitle("Figure 7: Figure 6(b)'s testbed run over time")
    save(fig, pdf, png)
