"""Ray burst run records -> one row per (workload, data case, scheduler, bandwidth): the median
total time and its spread over repetitions, measured link rates, inputs sent to the cloud."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from reprise.errors import DataError

KEYS = ("workload", "data_case", "scheduler", "nominal_mbit")
TABLE_COLUMNS = (
    *KEYS, "configured_mbit", "measured_mbit", "repetitions", "median_s", "min_s", "max_s",
    "std_s", "inputs_to_cloud", "speedup_vs_default",
)  # fmt: skip


def _summary(rundir: Path) -> dict[str, object]:
    path = rundir / "summary.json"
    try:
        data: dict[str, object] = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(
            f"{path}: unreadable run summary ({exc}); rerun that point "
            f"(snakemake ray_burst -R ray_burst_run)"
        ) from None
    return data


def burst_table(records: Sequence[Path]) -> pd.DataFrame:
    rows = []
    for rundir in records:
        s = _summary(rundir)
        links = s.get("links") or []
        measured = [float(lk["measured_mbit"]) for lk in links]  # type: ignore[attr-defined]
        metrics = s["metrics"]
        rows.append(
            {
                "workload": s["workload"],
                "data_case": s["data_case"],
                "scheduler": s["scheduler"],
                "nominal_mbit": s["nominal_mbit"],
                "configured_mbit": s["configured_mbit"],
                "measured_mbit": measured[0] if measured else float("nan"),
                "total_s": metrics["total_s"],  # type: ignore[index]
                "inputs_to_cloud": metrics["inputs_to_cloud"],  # type: ignore[index]
            }
        )
    if not rows:
        raise DataError("no Ray burst run records given")
    data = pd.DataFrame(rows)
    grouped = data.groupby(list(KEYS), as_index=False).agg(
        configured_mbit=("configured_mbit", "first"),
        measured_mbit=("measured_mbit", "median"),
        repetitions=("total_s", "size"),
        median_s=("total_s", "median"),
        min_s=("total_s", "min"),
        max_s=("total_s", "max"),
        std_s=("total_s", "std"),
        inputs_to_cloud=("inputs_to_cloud", "median"),
    )
    base = grouped[grouped["scheduler"] == "default"].set_index(
        ["workload", "data_case", "nominal_mbit"]
    )["median_s"]
    keyed = grouped.set_index(["workload", "data_case", "nominal_mbit"]).index
    grouped["speedup_vs_default"] = [
        round(base.get(k, float("nan")) / m, 4) if m else float("nan")
        for k, m in zip(keyed, grouped["median_s"], strict=True)
    ]
    for col in ("median_s", "min_s", "max_s", "std_s", "measured_mbit"):
        grouped[col] = grouped[col].astype(float).round(3)
    return grouped.loc[:, list(TABLE_COLUMNS)].sort_values(list(KEYS)).reset_index(drop=True)
