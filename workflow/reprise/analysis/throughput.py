"""Throughput-profile run records -> a tidy table with speed-up and scaling efficiency."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from reprise.errors import DataError

MEASURED = ("model", "size", "global_batch", "workers", "iterations_per_s", "samples_per_s")
TABLE_COLUMNS = ("cluster", *MEASURED, "speedup", "scaling_efficiency", "nodes")


def throughput_table(records: Sequence[Path]) -> pd.DataFrame:
    """One row per (cluster, model, batch, workers); speed-up against one worker at the same
    global batch size (blank where one worker was not measured)."""
    frames = []
    for rundir in records:
        summary_path = rundir / "summary.json"
        try:
            summary = json.loads(summary_path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise DataError(
                f"{summary_path}: unreadable run summary ({exc}); rerun the testbed job "
                f"(snakemake -R throughput_profile_run)"
            ) from None
        frame = pd.read_csv(rundir / "measurements.csv")
        frame.insert(0, "cluster", summary["cluster"])
        frames.append(frame)
    data = pd.concat(frames, ignore_index=True)
    keys = ["cluster", "model", "size", "global_batch"]
    base = (
        data[data["workers"] == 1]
        .set_index(keys)["iterations_per_s"]
        .rename("single")
        .reset_index()
    )
    data = data.merge(base, on=keys, how="left")
    data["speedup"] = (data["iterations_per_s"] / data["single"]).round(4)
    data["scaling_efficiency"] = (data["speedup"] / data["workers"]).round(4)
    data["iterations_per_s"] = data["iterations_per_s"].round(4)
    data["samples_per_s"] = data["samples_per_s"].round(3)
    out = data.loc[:, list(TABLE_COLUMNS)]
    return out.sort_values(["cluster", "model", "global_batch", "workers"]).reset_index(drop=True)


def profiling_times(records: Sequence[Path]) -> pd.DataFrame:
    """Wall seconds each model's profiling took (Figure 12(a)'s quantity), per cluster."""
    rows = []
    for rundir in records:
        summary = json.loads((rundir / "summary.json").read_text())
        for model, seconds in summary["metrics"]["profiling_seconds_per_model"].items():
            rows.append({"cluster": summary["cluster"], "model": model, "seconds": seconds})
    return pd.DataFrame(rows, columns=["cluster", "model", "seconds"])
