"""Write a run record, the contract between stages: jobs.csv, events.csv and summary.json."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from reprise.atomic import write_text_atomic
from reprise.records.outcome import JobOutcome, RunOutcome
from reprise.records.result import RunResult

JOB_COLUMNS = (
    "idx",
    "job_id",
    "model",
    "batch_size",
    "num_gpu",
    "submit_time",
    "deadline",
    "best_effort",
    "admitted",
    "start_time",
    "end_time",
    "gpus_at_end",
    "jct",
    "met_deadline_published",
    "met_deadline_completion",
    "preempt",
)
EVENT_COLUMNS = ("time", "gpus_in_use", "ce", "running", "pending")


def _num(value: float | None) -> str:
    """Integers print without a trailing .0 so files diff cleanly against upstream logs."""
    if value is None:
        return ""
    if float(value).is_integer():
        return str(int(value))
    return repr(float(value))


def _flag(value: bool | None) -> str:
    return "" if value is None else str(int(value))


def met_by_completion(job: JobOutcome) -> bool | None:
    """The uniform yardstick: finished, and finished no later than the deadline."""
    if job.best_effort or job.deadline is None:
        return None
    return job.admitted and job.end_time is not None and job.end_time <= job.deadline


def summarize(result: RunOutcome) -> dict[str, Any]:
    """Metrics derived from a result; everything here is deterministic for a given run."""
    slo = [j for j in result.jobs if not j.best_effort]
    met_completion = sum(1 for j in slo if met_by_completion(j))
    late_counted = sum(1 for j in slo if j.met_deadline_published and not met_by_completion(j))
    be_jcts = [
        j.end_time - j.submit_time for j in result.jobs if j.best_effort and j.end_time is not None
    ]
    ces = [r.ce for r in result.rounds]
    return {
        "accepted": result.accepted,
        "declined": result.declined,
        "slo_jobs": len(slo),
        "best_effort_jobs": len(result.jobs) - len(slo),
        "completed_jobs": sum(1 for j in result.jobs if j.end_time is not None),
        "ratio_published_rule": result.ratio_published_rule,
        "ratio_completion": met_completion / len(slo) if slo else math.nan,
        "met_completion": met_completion,
        "late_but_counted_met": late_counted,
        "best_effort_mean_jct": sum(be_jcts) / len(be_jcts) if be_jcts else None,
        "mean_cluster_efficiency": sum(ces) / len(ces) if ces else None,
        "rounds": len(result.rounds),
        "extra": result.extra,
    }


def write_run_record(run: RunResult, outdir: Path, meta: Mapping[str, Any]) -> dict[str, Any]:
    """Write the three files; the run's identity (`run`) and `meta` (inputs, options,
    versions) go into summary.json."""
    result = run.outcome
    outdir.mkdir(parents=True, exist_ok=True)
    with (outdir / "jobs.csv").open("w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(JOB_COLUMNS)
        for j in result.jobs:
            jct = None if j.end_time is None else j.end_time - j.submit_time
            writer.writerow(
                (
                    j.idx,
                    j.job_id,
                    j.model,
                    j.batch_size,
                    j.num_gpu,
                    j.submit_time,
                    "" if j.deadline is None else j.deadline,
                    int(j.best_effort),
                    int(j.admitted),
                    _num(j.start_time),
                    _num(j.end_time),
                    "" if j.gpus_at_end is None else j.gpus_at_end,
                    _num(jct),
                    _flag(j.met_deadline_published),
                    _flag(met_by_completion(j)),
                    j.preempt,
                )
            )
    with (outdir / "events.csv").open("w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(EVENT_COLUMNS)
        for r in result.rounds:
            writer.writerow((_num(r.time), r.gpus_in_use, repr(float(r.ce)), r.running, r.pending))
    if any(r.gpu_map is not None for r in result.rounds):
        _write_gpu_map(result, outdir / "gpu_map.csv")
    summary = {**meta, "run": run.identity(), "metrics": summarize(result)}
    # written last and renamed into place: a summary.json that exists is a whole one
    write_text_atomic(outdir / "summary.json", json.dumps(summary, indent=2, sort_keys=True) + "\n")
    return summary


def _write_gpu_map(result: RunOutcome, path: Path) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        width = max(len(r.gpu_map or ()) for r in result.rounds)
        writer.writerow(("time", *(f"gpu{i}" for i in range(width)), "ce"))
        for r in result.rounds:
            cells = ["" if g is None else str(g) for g in (r.gpu_map or ())]
            writer.writerow((_num(r.time), *cells, repr(float(r.ce))))
