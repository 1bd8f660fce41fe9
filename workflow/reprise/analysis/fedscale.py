"""FedScale run records -> per-round and per-run tables, and whether deployments agree."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

RUN_KEYS = ["deployment", "executors", "participants", "rounds", "seed"]
BASELINE = "process"


def rounds_table(run_dirs: Sequence[Path]) -> pd.DataFrame:
    """One row per (run, round): the run's keys, then FedScale's per-round numbers."""
    frames = []
    for run in run_dirs:
        summary = json.loads((run / "summary.json").read_text())
        rounds = pd.read_csv(run / "rounds.csv")
        for key in reversed(RUN_KEYS):
            rounds.insert(0, key, summary[key])
        frames.append(rounds)
    table = pd.concat(frames, ignore_index=True)
    return table.sort_values([*RUN_KEYS, "round"], kind="stable").reset_index(drop=True)


def runs_table(table: pd.DataFrame, tolerance: float) -> pd.DataFrame:
    """Per run: final accuracy, mean round time, both against the `process` run of same keys.

    `max_accuracy_gap` is the largest per-round difference in test accuracy from the baseline
    run with the same executors, participants, rounds and seed; `late_accuracy_gap` compares the
    mean of the last three tests, and `same_curve` says whether that is within `tolerance`.
    Per-round agreement is not to be expected: FedScale seeds its sampler and models, but hands
    each round's clients to whichever executor asks first, and each executor draws its own data
    order and augmentations, so two runs of one seed differ from the first round that timing
    decides (measured in the README).
    """
    rows: list[dict[str, Any]] = []
    for keys, group in table.groupby(RUN_KEYS, sort=True):
        tested = group.dropna(subset=["test_top1"])
        timed = group.dropna(subset=["round_s"])
        rows.append(
            {
                **dict(zip(RUN_KEYS, keys, strict=True)),
                "first_accuracy": tested["test_top1"].iloc[0] if len(tested) else None,
                "final_accuracy": tested["test_top1"].iloc[-1] if len(tested) else None,
                "best_accuracy": tested["test_top1"].max() if len(tested) else None,
                "mean_round_s": timed["round_s"].mean() if len(timed) else None,
                "total_s": timed["round_s"].sum() if len(timed) else None,
            }
        )
    runs = pd.DataFrame(rows)
    same = ["executors", "participants", "rounds", "seed"]
    gaps: list[float | None] = []
    late: list[float | None] = []
    cost: list[float | None] = []
    for _, run in runs.iterrows():
        base = table[(table["deployment"] == BASELINE)]
        for key in same:
            base = base[base[key] == run[key]]
        mine = table[(table["deployment"] == run["deployment"])]
        for key in same:
            mine = mine[mine[key] == run[key]]
        if base.empty:
            gaps.append(None)
            late.append(None)
            cost.append(None)
            continue
        joined = mine.merge(base, on="round", suffixes=("", "_base")).dropna(
            subset=["test_top1", "test_top1_base"]
        )
        gaps.append(float((joined["test_top1"] - joined["test_top1_base"]).abs().max()))
        late.append(
            float(abs(joined["test_top1"].tail(3).mean() - joined["test_top1_base"].tail(3).mean()))
        )
        base_mean = base["round_s"].dropna().mean()
        cost.append(float(run["mean_round_s"] / base_mean) if base_mean else None)
    runs["max_accuracy_gap"] = gaps
    runs["late_accuracy_gap"] = late
    runs["same_curve"] = [None if g is None else bool(g <= tolerance) for g in late]
    runs["round_time_vs_process"] = cost
    runs["tolerance"] = tolerance
    return runs
