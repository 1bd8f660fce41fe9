"""The Ray burst figure: total time vs bandwidth, one panel per (workload, data case), one line
per scheduler with the repetitions' range as a band, the data-aware scheduler's gain written on."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd

from reprise.errors import DataError

LABELS = {"default": "Ray default", "data_aware": "data-aware"}
COLOURS = {"default": "#7f7f7f", "data_aware": "#1f77b4"}
WORKLOADS = {"parameter_server": "parameter server", "transform": "image transformation"}
DATA = {"hpc": "data on HPC", "s3": "data in S3"}


def plot_burst(table: pd.DataFrame, outputs: list[Path]) -> None:
    if table.empty:
        raise DataError("the Ray burst table is empty: no run to plot")
    panels = [(w, d) for w in WORKLOADS for d in DATA]
    fig, axes = plt.subplots(2, 2, figsize=(9, 6.5), squeeze=False)
    for ax, (workload, case) in zip(axes.flat, panels, strict=True):
        part = table[(table["workload"] == workload) & (table["data_case"] == case)]
        for scheduler, rows in part.groupby("scheduler"):
            rows = rows.sort_values("nominal_mbit")
            key = str(scheduler)
            ax.plot(
                rows["nominal_mbit"], rows["median_s"], marker="o",
                color=COLOURS.get(key), label=LABELS.get(key, key),
            )  # fmt: skip
            ax.fill_between(
                rows["nominal_mbit"], rows["min_s"], rows["max_s"], color=COLOURS.get(key),
                alpha=0.2, linewidth=0,
            )  # fmt: skip
        aware = part[part["scheduler"] == "data_aware"]
        if "gain_pct" in part:
            for row in aware.dropna(subset=["gain_pct"]).itertuples():
                # the time the data-aware scheduler saves over Ray's default at this bandwidth
                ax.annotate(
                    f"{row.gain_pct:+.0f} %", (row.nominal_mbit, row.median_s),
                    textcoords="offset points", xytext=(0, 7), ha="center", fontsize=7,
                    color=COLOURS["data_aware"],
                )  # fmt: skip
        ax.set_title(f"{WORKLOADS[workload]}, {DATA[case]}", fontsize=10)
        ax.set_xlabel("HPC-cloud bandwidth (Mbit/s)")
        ax.set_ylabel("total time (s)")
        if part.empty:
            ax.text(0.5, 0.5, "not run", ha="center", va="center", transform=ax.transAxes)
        else:
            ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.suptitle(
        "Ray burst: workload time vs HPC-cloud bandwidth (median, range over repetitions;\n"
        "% = time the data-aware scheduler saves over Ray's default)",
        fontsize=10,
    )
    fig.tight_layout()
    for path in outputs:
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=150)
    plt.close(fig)
