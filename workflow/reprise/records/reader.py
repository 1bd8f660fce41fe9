"""Read run records back: summary.json and the identity of the run it belongs to."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reprise.errors import DataError
from reprise.records.result import RunIdentity


def read_summary(rundir: Path) -> dict[str, Any]:
    """A run's summary.json; a damaged one is named with the command that recomputes it."""
    path = rundir / "summary.json"
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(
            f"{path}: not a complete run summary ({exc}); it was cut short or edited. "
            f"Recompute that run with `snakemake -R {path}` (with the same target and options)."
        ) from None
    if not isinstance(data, dict) or "metrics" not in data:
        raise DataError(
            f"{path}: not a run summary (no 'metrics' object); recompute that run with "
            f"`snakemake -R {path}`"
        )
    return data


@dataclass(frozen=True)
class RecordedRun(RunIdentity):
    """A run record as analysis sees it: the run's identity fields and its summary."""

    summary: dict[str, Any]

    @property
    def seed(self) -> int | None:
        """The seed runs of one group differ in: the trace's deadline seed, else the policy's."""
        return self.trace_seed if self.trace_seed is not None else self.policy_seed

    @property
    def metrics(self) -> dict[str, Any]:
        metrics: dict[str, Any] = self.summary["metrics"]
        return metrics


def read_run(rundir: Path) -> RecordedRun:
    """The record in `rundir`; one written before records carried their identity is refused."""
    summary = read_summary(rundir)
    run = summary.get("run")
    if not isinstance(run, dict):
        raise DataError(
            f"{rundir / 'summary.json'}: no 'run' block (written by an older Reprise); "
            f"recompute that run with `snakemake -R {rundir / 'summary.json'}`"
        )
    return RecordedRun(
        kind=run["kind"],
        experiment=str(run["experiment"]),
        trace=str(run["trace"]),
        trace_seed=run["trace_seed"],
        cluster=str(run["cluster"]),
        policy=str(run["policy"]),
        policy_seed=run["policy_seed"],
        summary=summary,
    )
