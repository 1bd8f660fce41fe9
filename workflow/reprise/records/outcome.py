"""What a run hands back, simulated or real: per-job outcomes, per-round samples, counters."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from reprise.data.traces import TraceJob


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
class RunOutcome:
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
