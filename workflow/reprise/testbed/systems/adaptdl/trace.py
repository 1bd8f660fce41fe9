"""The Figure 6(a) trace for Pollux on the testbed, a reduced trace for CPU nodes, and the Pollux
workload file upstream's job submitter reads.

The paper's 25-job Figure 6(a) trace is not published. It is made here as the artifact's
generator (ElasticFlow/trace_generator/generate_trace.py, ported in `reprise.data.generate`) makes
its traces: 25 jobs, Poisson arrivals, the A100 throughput profiles, seed 0, deadlines 0.5-1.5x the
duration. The generator's default arrival rate is 0 (every job at time 0), which no testbed run
used; we take lam = 900 s, the mean inter-arrival time of the artifact's published 195-job A100
testbed trace (887 s), and the value its Figure 11 traces use. The cluster is the README's
Figure 6(a) cluster, n4g8 (4 nodes x 8 A100).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from reprise.atomic import write_text_atomic
from reprise.data.generate import HEADER, GeneratorParams, generate_rows, write_generated_trace
from reprise.data.profiles import ThroughputProfiles
from reprise.data.traces import TraceJob
from reprise.errors import ConfigError
from reprise.records.outcome import JobOutcome

FIGURE6A = GeneratorParams(num_jobs=25, lam=900, seed=0, deadline_seed=0)
FIGURE6A_CLUSTER = "n4g8"
# Upstream's model directories (pollux_testbed/models/<name>) where they differ from the
# profile names the traces use.
APPLICATIONS = {"inception3": "inceptionv3"}
WORKLOAD_HEADER = ("name", "time", "application", "num_replicas", "batch_size", "samples")


def write_figure6a_trace(profiles: ThroughputProfiles, dest: Path) -> int:
    """The 25-job trace in upstream's trace format (checked like every generated trace)."""
    return write_generated_trace(FIGURE6A, profiles, dest, key="figure6a (Pollux testbed)")


def pollux_workload(jobs: Sequence[TraceJob]) -> list[tuple[str, int, str, int, int, int]]:
    """Rows of the workload run_workload.py submits: submit time relative to the first job
    (upstream subtracted a constant fitted to one trace), samples = iterations x batch size."""
    if not jobs:
        raise ConfigError("the trace holds no jobs: nothing to submit")
    start = min(j.submit_time for j in jobs)
    rows = []
    for job in sorted(jobs, key=lambda j: (j.submit_time, j.idx)):
        rows.append(
            (
                job.job_id,
                job.submit_time - start,
                APPLICATIONS.get(job.model, job.model),
                job.num_gpu,
                job.batch_size,
                job.iterations * job.batch_size,
            )
        )
    return rows


def write_pollux_workload(jobs: Sequence[TraceJob], dest: Path) -> None:
    lines = [",".join(WORKLOAD_HEADER)]
    lines += [",".join(str(c) for c in row) for row in pollux_workload(jobs)]
    write_text_atomic(dest, "\n".join(lines) + "\n")


@dataclass(frozen=True)
class ReducedSettings:
    """A trace a 2-core machine runs in minutes: the generator's first `num_jobs` jobs (same
    models, batch sizes, GPU counts, arrival order and deadline factors), its clock multiplied
    by `time_scale`, durations clipped to [min_duration_s, max_duration_s], GPU counts to
    `max_replicas` (one replica per CPU slot)."""

    num_jobs: int = 6
    lam: float = 900
    seed: int = 0
    deadline_seed: int = 0
    time_scale: float = 1 / 60
    min_duration_s: float = 60
    max_duration_s: float = 240
    max_replicas: int = 2

    def check(self) -> None:
        if self.num_jobs < 1 or self.max_replicas < 1:
            raise ConfigError("reduced trace: num_jobs and max_replicas must be at least 1")
        if not 0 < self.time_scale <= 1:
            raise ConfigError(f"reduced trace: time_scale {self.time_scale} must be in (0, 1]")
        if not 0 < self.min_duration_s <= self.max_duration_s:
            raise ConfigError("reduced trace: need 0 < min_duration_s <= max_duration_s")


def _generator_params(settings: ReducedSettings) -> GeneratorParams:
    return GeneratorParams(
        num_jobs=settings.num_jobs,
        lam=settings.lam,
        seed=settings.seed,
        deadline_seed=settings.deadline_seed,
    )


def reduced_models(settings: ReducedSettings, profiles: ThroughputProfiles) -> dict[str, int]:
    """The reduced trace's models, in order of first arrival, each with its first job's batch
    size (what a measurement of the CPU rates trains them at); the generator's rows do not
    depend on the rates."""
    settings.check()
    models: dict[str, int] = {}
    for row in generate_rows(_generator_params(settings), profiles):
        models.setdefault(row[3], row[5])
    return models


def reduced_rows(
    settings: ReducedSettings,
    profiles: ThroughputProfiles,
    samples_per_s: Mapping[str, float],
) -> list[tuple[int, int, int, str, int, int, int, int, int]]:
    """Rows in upstream's trace format (HEADER). A job's iterations are what its replicas train
    in its scaled duration at `samples_per_s` (the tiny model's measured rate on one CPU
    replica, per model), so a job asking for k replicas has k times the work of a 1-replica job
    of the same duration, as on the paper's GPUs."""
    settings.check()
    params = _generator_params(settings)
    rows = []
    for job_id, submit, _, model, ddl, batch, gpus, duration, best_effort in generate_rows(
        params, profiles
    ):
        if model not in samples_per_s:
            raise ConfigError(
                f"reduced trace: no CPU rate for {model}; give samples_per_s for "
                f"{', '.join(sorted({r[3] for r in generate_rows(params, profiles)}))}"
            )
        factor = (ddl - submit) / duration if duration else 1.0
        seconds = min(
            max(duration * settings.time_scale, settings.min_duration_s), settings.max_duration_s
        )
        replicas = min(gpus, settings.max_replicas)
        start = int(submit * settings.time_scale)
        samples = seconds * samples_per_s[model] * replicas
        iterations = max(1, math.ceil(samples / batch))
        rows.append(
            (
                job_id,
                start,
                iterations,
                model,
                start + int(factor * seconds),
                batch,
                replicas,
                int(seconds),
                best_effort,
            )
        )
    return rows


def write_reduced_trace(
    settings: ReducedSettings,
    profiles: ThroughputProfiles,
    samples_per_s: Mapping[str, float],
    dest: Path,
) -> int:
    rows = reduced_rows(settings, profiles, samples_per_s)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.part")
    with tmp.open("w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(HEADER)
        writer.writerows(rows)
    tmp.replace(dest)
    return len(rows)


SCALES = ("laptop", "paper")


def write_scale_trace(
    scale: str,
    profiles: ThroughputProfiles,
    reduced: Mapping[str, float | int],
    samples_per_s: Mapping[str, float],
    dest: Path,
) -> int:
    """The trace of one scale of `snakemake pollux_testbed`: `paper` is the 25-job Figure 6(a)
    trace, `laptop` the reduced trace made with the config's `reduced` settings and CPU rates."""
    if scale == "paper":
        return write_figure6a_trace(profiles, dest)
    if scale != "laptop":
        raise ConfigError(f"pollux_testbed scale {scale!r}: one of {', '.join(SCALES)}")
    return write_reduced_trace(reduced_settings(reduced), profiles, samples_per_s, dest)


def reduced_settings(reduced: Mapping[str, float | int]) -> ReducedSettings:
    """The config's `pollux_testbed.reduced` as settings (unknown keys refused by name)."""
    try:
        return ReducedSettings(**reduced)  # type: ignore[arg-type]
    except TypeError as exc:
        raise ConfigError(f"pollux_testbed.reduced: {exc}") from None


def jct_over_duration(
    jobs: Sequence[JobOutcome], trace: Sequence[TraceJob]
) -> dict[str, float | None]:
    """Each job's completion time over its trace duration (its time alone on the GPUs it asks
    for, on the run's own clock), by job id; None for a job that did not finish. A job meets
    its deadline when this is at most its deadline factor (relative deadline over duration)."""
    durations = {j.job_id: j.duration for j in trace}
    return {
        job.job_id: None
        if job.end_time is None
        else round((job.end_time - job.submit_time) / max(durations[job.job_id], 1), 3)
        for job in jobs
    }
