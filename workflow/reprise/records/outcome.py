"""What a simulated policy run hands back: per-job outcomes, per-round samples, counters."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from reprise.data.traces import TraceJob


@dataclass(frozen=True)
class SimOptions:
    """Knobs of one run. `switches` holds the upstream version switches (spec 0.2, 11)."""

    slot: int = 60
    gpu_type: str = "A100"
    ef_scaleup_updates_real_end: bool = False
    tiresias_min_slot_end_event: bool = False
    record_gpu_map: bool = False
    """Keep the per-GPU job map of every round (Figure 10); off by default, it is large."""
    show_progress: bool = False
    data_root: str = ""
    """Directory holding `ElasticFlow-artifact/...` (Pollux reads its ground truth there)."""
    seed: int = 0
    """Seed of the randomised policies (Pollux's search)."""


@dataclass
class JobOutcome:
    """One job's fate. Times are on the trace clock; None where the job never got there."""

    idx: int
    job_id: str
    model: str
    batch_size: int
    num_gpu: int
    """GPUs the trace asks for."""
    submit_time: int
    deadline: int | None
    """Absolute deadline; None for best-effort jobs."""
    best_effort: bool
    admitted: bool
    start_time: float | None = None
    end_time: float | None = None
    gpus_at_end: int | None = None
    met_deadline_published: bool | None = None
    """The policy's own (as-published) verdict; None for best-effort jobs."""
    preempt: int = 0

    @classmethod
    def of(
        cls,
        job: TraceJob,
        *,
        admitted: bool,
        start_time: float | None,
        end_time: float | None,
        gpus_at_end: int | None,
        met_deadline_published: bool | None,
        preempt: int = 0,
    ) -> JobOutcome:
        """The outcome of a trace job; the trace's fields are copied, the rest is the run's."""
        return cls(
            idx=job.idx,
            job_id=job.job_id,
            model=job.model,
            batch_size=job.batch_size,
            num_gpu=job.num_gpu,
            submit_time=job.submit_time,
            deadline=None if job.best_effort else job.deadline,
            best_effort=job.best_effort,
            admitted=admitted,
            start_time=start_time,
            end_time=end_time,
            gpus_at_end=gpus_at_end,
            met_deadline_published=met_deadline_published,
            preempt=preempt,
        )


@dataclass(frozen=True)
class RoundSample:
    """One scheduling round: time, GPUs held by jobs, cluster efficiency `ce`, queue sizes."""

    time: float
    gpus_in_use: int
    ce: float
    running: int
    pending: int
    gpu_map: tuple[int | None, ...] | None = None


@dataclass
class SimResult:
    jobs: list[JobOutcome]
    rounds: list[RoundSample]
    accepted: int
    declined: int
    extra: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    """Wall-clock measurements (benchmarks only); never written to run records, which stay
    byte-stable."""

    @property
    def ratio_published_rule(self) -> float:
        total = self.accepted + self.declined
        return self.accepted / total if total else 0.0


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
