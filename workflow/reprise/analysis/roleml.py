"""The RoleML offloading table: one row per offload of every repeated run (phases, size, state
kept, rounds around it), then the median, minimum and maximum of each trigger's offloads over all
runs (their `offload` column counts the offloads, `repetition` the runs)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from reprise.errors import DataError

PHASES = ("pause_s", "checkpoint_s", "transfer_s", "restore_s", "resume_s")
NUMBERS = (*PHASES, "total_s", "checkpoint_mb", "decision_ms", "detect_s", "round_s_before",
           "round_s_during", "round_s_after")  # fmt: skip


def _read(run: Path, name: str) -> pd.DataFrame:
    path = run / name
    if not path.is_file():
        raise DataError(f"{path}: missing from the run record; rerun `snakemake roleml_offload`")
    return pd.read_csv(path)


def col(frame: pd.DataFrame, name: str) -> np.ndarray:
    """A column as floats (the record's numbers; typed for the checks)."""
    return np.asarray(frame[name].to_numpy(dtype=float))


def _around(rounds: pd.DataFrame, at: int) -> dict[str, float]:
    index = col(rounds, "round").astype(int)
    took = col(rounds, "finished") - col(rounds, "started")
    finished = dict(zip(index.tolist(), col(rounds, "finished").tolist(), strict=True))
    accuracy = dict(zip(index.tolist(), col(rounds, "accuracy").tolist(), strict=True))
    before = took[(index >= at - 3) & (index < at)]
    after = took[(index > at) & (index <= at + 3)]
    nan = float("nan")
    return {
        "round_s_before": float(np.median(before)) if len(before) else nan,
        "round_s_during": finished.get(at, nan) - finished.get(at - 1, nan),
        "round_s_after": float(np.median(after)) if len(after) else nan,
        "accuracy_before": accuracy.get(at - 1, nan),
        "accuracy_after": accuracy.get(at, nan),
    }


def _offload_rows(run: Path, repetition: int) -> list[dict[str, Any]]:
    """One row per offload of one run, with the rounds around it and its decision times."""
    offloads = _read(run, "offloads.csv")
    rounds = _read(run, "rounds.csv")
    decisions = _read(run, "decisions.csv")
    events = _read(run, "events.csv")
    rows: list[dict[str, Any]] = []
    acting = decisions[decisions["plan"] != "none"]
    acted = col(acting, "decision_ms").tolist()
    # how long the Decider took to notice: from the stress starting to its decision
    stress = np.sort(col(events[events["event"] == "stress-start"], "time"))
    detect = [
        float(t - stress[stress <= t].max()) if (stress <= t).any() else float("nan")
        for t in col(acting, "decision_started")
    ]
    automatic = 0
    for rec in offloads.to_dict("records"):
        record: dict[str, Any] = {str(k): v for k, v in rec.items()}
        row: dict[str, Any] = {"row": "offload", "repetition": repetition, **record}
        row.update(_around(rounds, int(record["round_at_pause"])))
        # the offloaded role kept its state: its epoch counter went on from where it was
        row["state_kept"] = int(record["epoch_after"]) == int(record["epoch_before"]) + 1
        row["decision_ms"] = row["detect_s"] = float("nan")
        if record["trigger"] == "automatic" and automatic < len(acted):
            row["decision_ms"], row["detect_s"] = acted[automatic], detect[automatic]
            automatic += 1
        rows.append(row)
    return rows


def offload_table(runs: Sequence[Path]) -> pd.DataFrame:
    """Every offload of every run (repetition = the run's index in `runs`), then per trigger the
    median, minimum and maximum over all of them."""
    if not runs:
        raise DataError("no RoleML run to tabulate: testbed.roleml.repetitions must be >= 1")
    rows = [row for index, run in enumerate(runs) for row in _offload_rows(run, index)]
    table = pd.DataFrame(rows)
    for trigger, group in table.groupby("trigger", sort=False):
        for stat in ("median", "min", "max"):
            summary = {
                "row": stat,
                "trigger": trigger,
                "offload": len(group),
                "repetition": group["repetition"].nunique(),
            }
            summary.update({k: float(getattr(np, f"nan{stat}")(col(group, k))) for k in NUMBERS})
            summary["state_kept"] = bool(group["state_kept"].all())
            rows.append(summary)
    return pd.DataFrame(rows)
