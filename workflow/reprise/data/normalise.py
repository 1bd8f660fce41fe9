"""Write a validated trace in the canonical column spelling (the traces stage's output)."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

from reprise.data.clusters import ClusterSpec
from reprise.data.profiles import ThroughputProfiles
from reprise.data.traces import load_trace, read_rows
from reprise.data.validate import check_trace

CANONICAL = (
    "job_id",
    "submit_time",
    "iteration",
    "model_name",
    "ddl",
    "batch_size",
    "num_gpu",
    "duration",
    "best_effort",
)


def normalise_trace(
    source: Path,
    dest: Path,
    profiles: ThroughputProfiles,
    clusters: Sequence[tuple[str, ClusterSpec]] = (),
) -> int:
    """Validate `source` against `profiles` and the `clusters` it will run on, write it to
    `dest`; returns the job count. Nothing is written unless every check passes.

    Best-effort rows keep their generated deadline in `ddl` (Chronus reads it), the flag says
    that the simulator must ignore it.
    """
    jobs = load_trace(source, profiles)
    check_trace(source, jobs, profiles, clusters)
    _, raw, _ = read_rows(source)
    tmp = dest.with_name(f".{dest.name}.part")
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tmp.open("w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(CANONICAL)
        for job, row in zip(jobs, raw, strict=True):
            ddl = (
                (row.cells.get("ddl") or row.cells.get("deadline") or "").strip()
                if job.best_effort
                else job.deadline
            )
            writer.writerow(
                (
                    job.job_id,
                    job.submit_time,
                    job.iterations,
                    job.model,
                    ddl,
                    job.batch_size,
                    job.num_gpu,
                    job.duration,
                    int(job.best_effort),
                )
            )
    tmp.replace(dest)
    return len(jobs)
