"""Figure 7: Figure 6(b)'s testbed runs over time: GPUs each policy allocated (7a) and, per time
step, jobs submitted and jobs accepted (7b), from the runs' records. The default step is 7(a)'s
5 minutes (upstream's plot_fig7a.py); 7(b) adds steps up to its 10 minutes when it is drawn."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

COLUMNS = ("policy", "minute", "gpus_in_use", "submitted", "accepted")


STEP_MIN = 5.0
"""Upstream's Figure 7(a) step (`step = 5 # step minutes`)."""


def over_time(testbed_dir: Path, step_min: float = STEP_MIN) -> pd.DataFrame:
    """One row per policy and time step (minutes since the first submission, `step_min` wide):
    the GPUs held at the step's last round, jobs submitted and jobs admitted in the step."""
    summary = json.loads((testbed_dir / "summary.json").read_text())
    frames = []
    for policy in summary["policies"]:
        jobs = pd.read_csv(testbed_dir / policy / "jobs.csv")
        rounds = pd.read_csv(testbed_dir / policy / "events.csv")
        first = float(jobs["submit_time"].min())
        step = step_min * 60.0
        jobs["bucket"] = ((jobs["submit_time"] - first) // step).astype(int)
        rounds["bucket"] = ((rounds["time"] - first) // step).astype(int)
        last = int(max(jobs["bucket"].max(), rounds["bucket"].max()))
        submitted = jobs.groupby("bucket").size()
        accepted = jobs[jobs["admitted"] == 1].groupby("bucket").size()
        gpus = rounds.groupby("bucket")["gpus_in_use"].last()
        buckets = range(last + 1)
        frames.append(
            pd.DataFrame(
                {
                    "policy": policy,
                    "minute": [b * step_min for b in buckets],
                    "gpus_in_use": gpus.reindex(buckets).ffill().fillna(0).astype(int).to_list(),
                    "submitted": submitted.reindex(buckets, fill_value=0).to_list(),
                    "accepted": accepted.reindex(buckets, fill_value=0).to_list(),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)[list(COLUMNS)]
