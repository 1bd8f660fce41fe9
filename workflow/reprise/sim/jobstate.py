"""Job state the planning policies share with the engine, and the outcomes made from it."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from reprise.data.profiles import ThroughputProfiles
from reprise.data.traces import TraceJob
from reprise.records.outcome import JobOutcome


class PlannedJobState(Protocol):
    """What the EF-family simulators (ElasticFlow, EDF) keep per job, read-only here."""

    @property
    def trace(self) -> TraceJob: ...
    @property
    def admitted(self) -> bool: ...
    @property
    def done(self) -> bool: ...
    @property
    def start_time(self) -> float | None: ...
    @property
    def end_time(self) -> float: ...
    @property
    def gpus(self) -> int: ...
    @property
    def met(self) -> bool | None: ...


def planned_job_outcomes(jobs: Iterable[PlannedJobState]) -> list[JobOutcome]:
    """Outcomes of EF-family jobs: only admitted, finished jobs have an end and a GPU count."""
    outcomes = []
    for job in sorted(jobs, key=lambda j: j.trace.idx):
        finished = job.done and job.admitted
        outcomes.append(
            JobOutcome.of(
                job.trace,
                admitted=job.admitted,
                start_time=job.start_time,
                end_time=job.end_time if finished else None,
                gpus_at_end=job.gpus if finished else None,
                met_deadline_published=None if job.trace.best_effort else bool(job.met),
            )
        )
    return outcomes


def speedup(cache: dict[int, float], profiles: ThroughputProfiles, job: TraceJob) -> float:
    """tput(g) / tput(1) at the job's own size, for the round samples' cluster efficiency; looked
    up lazily and kept in `cache` by job index, as upstream's round log does."""
    value = cache.get(job.idx)
    if value is None:
        model, batch = job.model, job.batch_size
        value = profiles.tput(model, batch, job.num_gpu) / profiles.tput(model, batch, 1)
        cache[job.idx] = value
    return value
