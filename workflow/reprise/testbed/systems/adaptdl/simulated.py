"""The simulated Pollux beside a testbed run: the shared core's Pollux simulator on the same jobs,
arrival pattern, deadline factors and cluster.

Pollux's simulator times a job by its application's measured ground truth (bert, cifar10,
deepspeech2, imagenet, ncf, yolov3), not by the trace's iterations, and the testbed traces use
the ElasticFlow model zoo. So each model is mapped to the Pollux application of its task
(`applications`: image classifiers to cifar10, transformers to bert, deepspeech2 to itself), and
each job is put on that application's clock: its deadline is its trace deadline factor
(relative deadline over duration) times the application's duration alone on the GPUs the job
asks for (simulated, with Pollux's own allocation), and the arrivals keep their pattern,
stretched by the median ratio of simulated to trace durations. The result is the simulator's
verdict on the same scheduling problem, not a replay of the testbed's job lengths; the table
says so.
"""

from __future__ import annotations

import csv
import json
import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from reprise.atomic import write_text_atomic
from reprise.data.clusters import ClusterSpec
from reprise.data.generate import HEADER
from reprise.data.traces import TraceJob
from reprise.errors import ConfigError, SimulationError
from reprise.policies.pollux.apps import APP_SETTINGS
from reprise.policies.pollux.blas import single_threaded_blas

# the simulator's run and job model, to record each re-allocation as the testbed records its own
# (the simulator itself keeps only their count)
from reprise.policies.pollux.policy import PolluxJob, _Model, _PolluxRun, _result, simulate
from reprise.records.outcome import RunOutcome
from reprise.records.result import RunResult
from reprise.records.writer import write_run_record
from reprise.sim.options import SimOptions
from reprise.testbed.systems.adaptdl.allocator import count_resizes
from reprise.testbed.systems.adaptdl.trace import jct_over_duration

APPLICATIONS: dict[str, str] = {
    "resnet50": "cifar10",
    "vgg16": "cifar10",
    "inception3": "cifar10",
    "gpt2": "bert",
    "bert": "bert",
    "deepspeech2": "deepspeech2",
}
"""Default model -> Pollux application (config `applications` overrides it)."""
CHANGE_COLUMNS = ("time_s", "job", "reason", "replicas_before", "replicas_after", "nodes_after")
"""allocations.csv, as the testbed's controller writes it."""
FAR = 10**12
"""A deadline no isolated run reaches."""


def check_applications(applications: Mapping[str, str], models: Sequence[str]) -> None:
    missing = sorted(set(models) - set(applications))
    if missing:
        raise ConfigError(f"pollux_testbed.applications: no Pollux application for {missing}")
    unknown = sorted(set(applications.values()) - set(APP_SETTINGS))
    if unknown:
        raise ConfigError(
            f"pollux_testbed.applications: {unknown} are not Pollux applications "
            f"({', '.join(sorted(APP_SETTINGS))})"
        )


def alone_seconds(app: str, gpus: int, cluster: ClusterSpec, options: SimOptions) -> float:
    """The application's job from submission to completion alone on the `gpus` GPUs it asks for
    (as the trace's duration is its time on them), on nodes of the cluster's size."""
    per_node = min(gpus, cluster.gpus_per_node)
    nodes = math.ceil(gpus / per_node)
    own = ClusterSpec(f"n{nodes}g{per_node}", 1, nodes, per_node)
    job = TraceJob(0, "alone", 0, 1, app, FAR, 1, gpus, 1, False)
    end = simulate([job], own, None, options).jobs[0].end_time  # type: ignore[arg-type]
    if end is None or end <= 0:
        raise ConfigError(f"Pollux's simulator did not complete {app} alone on {own.name}")
    return float(end)


def on_application_clock(
    trace: Sequence[TraceJob],
    cluster: ClusterSpec,
    options: SimOptions,
    applications: Mapping[str, str],
) -> list[TraceJob]:
    """The trace's jobs as Pollux applications with deadlines and arrivals on their clock."""
    if not trace:
        raise ConfigError("the trace holds no jobs")
    check_applications(applications, [j.model for j in trace])
    alone = {
        (app, gpus): alone_seconds(app, gpus, cluster, options)
        for app, gpus in sorted({(applications[j.model], j.num_gpu) for j in trace})
    }
    stretch = statistics.median(
        alone[applications[j.model], j.num_gpu] / max(j.duration, 1) for j in trace
    )
    first = min(j.submit_time for j in trace)
    jobs = []
    for job in trace:
        app = applications[job.model]
        submit = round((job.submit_time - first) * stretch)
        seconds = alone[app, job.num_gpu]
        factor = job.relative_deadline / max(job.duration, 1)
        deadline = FAR if job.best_effort else submit + round(factor * seconds)
        jobs.append(
            replace(
                job,
                model=app,
                submit_time=submit,
                deadline=deadline,
                duration=round(seconds),
                raw_deadline=deadline,
            )
        )
    return jobs


class _RecordedModel(_Model):
    """The simulator's job model, recording every re-allocation the search makes with the
    columns of the testbed's allocations.csv."""

    def __init__(self, model: _Model, changes: list[dict[str, Any]]) -> None:
        super().__init__(model.c)
        self.changes = changes

    def reallocate(self, job: PolluxJob, row: Any, now: int) -> None:
        before = sum(job.placement)
        super().reallocate(job, row, now)
        self.changes.append(
            {
                "time_s": now,
                "job": job.trace.job_id,
                "reason": "pollux",
                "replicas_before": before,
                "replicas_after": sum(job.placement),
                "nodes_after": " ".join(
                    f"n{i}" for i, count in enumerate(row) for _ in range(int(count))
                ),
            }
        )


def simulate_recorded(
    trace: Sequence[TraceJob], cluster: ClusterSpec, options: SimOptions
) -> tuple[RunOutcome, list[dict[str, Any]]]:
    """The simulated Pollux run (the same outcome as `simulate`) and its re-allocations in the
    order the rounds made them: time, job, replicas before and after, nodes after."""
    if not trace:
        raise ConfigError("the Pollux policy needs at least one job")
    changes: list[dict[str, Any]] = []
    run = _PolluxRun(list(trace), cluster, options)
    run.model = _RecordedModel(run.model, changes)
    with single_threaded_blas():
        run.run(None)
    return _result(run.jobs, run.engine, run.counters, options), changes


def simulate_same_trace(
    trace: Sequence[TraceJob],
    cluster: ClusterSpec,
    data_root: Path | str,
    seed: int,
    applications: Mapping[str, str] = APPLICATIONS,
) -> tuple[RunOutcome, list[TraceJob], list[dict[str, Any]]]:
    """Pollux's simulator on the trace mapped to its applications; returns the outcome, the
    mapped trace it ran and its re-allocations (`simulate_recorded`)."""
    options = SimOptions(data_root=str(data_root), seed=seed)
    mapped = on_application_clock(trace, cluster, options, applications)
    outcome, changes = simulate_recorded(mapped, cluster, options)
    return outcome, mapped, changes


def write_simulated_run(
    trace: Sequence[TraceJob],
    cluster: ClusterSpec,
    data_root: Path | str,
    seed: int,
    applications: Mapping[str, str],
    out_dir: Path,
    trace_name: str,
) -> dict[str, Any]:
    """The run record (kind sim) of the simulated Pollux on the trace, with the mapped trace
    beside it; where the simulator cannot run the jobs (upstream's ground truth lacks a placement
    Pollux picks, and upstream asserts), a summary that says so and why."""
    identity = RunResult(
        kind="sim",
        experiment="pollux_testbed",
        trace=trace_name,
        trace_seed=None,
        cluster=cluster.name,
        policy="pollux",
        policy_seed=seed,
        outcome=RunOutcome([], [], 0, 0),
    )
    meta: dict[str, Any] = {"jobs": len(trace), "applications": dict(applications)}
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        outcome, mapped, changes = simulate_same_trace(
            trace, cluster, data_root, seed, applications
        )
    except SimulationError as exc:
        summary = {**meta, "run": identity.identity(), "metrics": {}, "not_simulated": str(exc)}
        write_text_atomic(out_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
        return summary
    _write_trace(mapped, out_dir / "trace.csv")
    _write_changes(changes, out_dir / "allocations.csv")
    meta["jct_over_duration"] = jct_over_duration(outcome.jobs, mapped)
    meta["reallocations"] = count_resizes(changes)
    return write_run_record(replace(identity, outcome=outcome), out_dir, meta)


def _write_trace(jobs: Sequence[TraceJob], dest: Path) -> None:
    with dest.open("w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(HEADER)
        for j in jobs:
            writer.writerow(
                (j.job_id, j.submit_time, j.iterations, j.model, j.deadline, j.batch_size,
                 j.num_gpu, j.duration, int(j.best_effort))
            )  # fmt: skip


def _write_changes(changes: Sequence[Mapping[str, Any]], dest: Path) -> None:
    with dest.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=CHANGE_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(changes)
