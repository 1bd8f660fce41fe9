"""The testbed's scheduler: a policy's rounds decided by the scheduling core exactly as in
simulation and carried out on real nodes by the elastic runtime. Progress between events comes
from the throughput table (fast-forward); each round's re-placements are real, and the seconds
until a re-placed job trains again are what the policy's charging rule charges. The run record
is written through `records` with kind `testbed`, plus restarts.csv (what each job went through).

This module sits above `sim` and `testbed` (it hands the testbed's executor to the engine), as
`reprise.simulate` does for simulation.
"""

from __future__ import annotations

import importlib
import inspect
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from reprise.atomic import write_text_atomic
from reprise.data.clusters import ClusterSpec
from reprise.data.profiles import ThroughputProfiles
from reprise.data.traces import TraceJob
from reprise.errors import ConfigError
from reprise.policies.registry import entry_of
from reprise.records.outcome import RunOutcome
from reprise.records.result import RunResult
from reprise.records.writer import write_run_record
from reprise.sim.options import SimOptions
from reprise.testbed.runtime.client import ElasticRuntime, JobSpec
from reprise.testbed.runtime.executor import Step, TestbedExecutor
from reprise.testbed.runtime.figure12b import csv_text

SIMULATION_ONLY = {
    "pollux": "Pollux simulates its own cluster (goodput model, re-scale delay, its own ground "
    "truth instead of the throughput table); upstream ran it on Kubernetes with AdaptDL, which "
    "is `snakemake adaptdl`'s testbed, not this runtime",
}
STEP_COLUMNS = tuple(f.name for f in fields(Step))


def policy_runner(policy: str) -> Callable[..., RunOutcome]:
    """The policy's simulate entry point, which must take an executor."""
    entry = entry_of(policy)
    run: Callable[..., RunOutcome] = getattr(importlib.import_module(entry.module), entry.function)
    if "executor" not in inspect.signature(run).parameters:
        why = SIMULATION_ONLY.get(policy, "its entry point takes no executor")
        raise ConfigError(f"policy {policy!r} cannot run on the testbed: {why}")
    return run


@dataclass(frozen=True)
class TrainerSettings:
    """What a trace job trains on the testbed: a zoo model per trace model, at a size."""

    models: Mapping[str, str]
    """Trace model (the throughput table's name) -> zoo model (resnet50_cifar10 -> resnet50)."""
    size: str = "tiny"
    global_batch: int | None = None
    """Samples per iteration over all ranks; None: the trace's batch size."""
    threads: int = 1
    seed: int = 0


def job_specs(
    trace: list[TraceJob], trainer: TrainerSettings, prefix: str
) -> Callable[[int], JobSpec]:
    """JobSpec of trace job i, named `<prefix>j<i>` (a run of several policies shares agents)."""
    by_idx = {t.idx: t for t in trace}
    for t in trace:
        if t.model not in trainer.models:
            raise ConfigError(
                f"trace job {t.job_id} trains {t.model!r}, which the trainer settings do not map "
                f"to a zoo model (models: {dict(trainer.models)})"
            )

    def spec(i: int) -> JobSpec:
        t = by_idx[i]
        return JobSpec(
            f"{prefix}j{i}",
            trainer.models[t.model],
            trainer.global_batch or t.batch_size,
            size=trainer.size,
            seed=trainer.seed + i,
            threads=trainer.threads,
        )

    return spec


@dataclass
class TestbedPolicyRun:
    """One policy's run on the testbed: the core's outcome and what the runtime went through."""

    __test__ = False

    policy: str
    outcome: RunOutcome
    steps: list[Step]
    failed: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    wall_s: float = 0.0


def run_policy(
    rt: ElasticRuntime,
    trace: list[TraceJob],
    cluster: ClusterSpec,
    profiles: ThroughputProfiles,
    policy: str,
    options: SimOptions,
    trainer: TrainerSettings,
    prefix: str = "",
    after_round: Callable[[TestbedExecutor], None] | None = None,
) -> TestbedPolicyRun:
    """Run `policy` on the started runtime; every job it placed is stopped at the end.
    `after_round` is called after each round is carried out (tests inject faults there)."""
    slots = sum(a.node.slots for a in rt.agents.values())
    if cluster.num_gpus > slots:
        raise ConfigError(
            f"cluster spec {cluster.name} has {cluster.num_gpus} GPUs but the testbed has "
            f"{slots} slots: use a spec that fits the inventory"
        )
    run = policy_runner(policy)
    executor = TestbedExecutor(rt, job_specs(trace, trainer, prefix), after_round)
    warned = len(rt.warnings)
    began = time.monotonic()
    outcome = run(trace, cluster, profiles, replace(options, record_gpu_map=True), executor)
    executor.stop_all()
    mine = set(executor.names.values())
    return TestbedPolicyRun(
        policy=policy,
        outcome=outcome,
        steps=executor.steps,
        failed={n: why for n, why in rt.failed().items() if n in mine},
        warnings=rt.warnings[warned:],
        wall_s=time.monotonic() - began,
    )


def restart_metrics(steps: list[Step]) -> dict[str, Any]:
    """Counts and seconds of the run's restarts (stops excluded)."""
    restarts = [s for s in steps if s.action != "stop"]
    measured = [s.measured_s for s in restarts if s.measured_s is not None]
    charged = [s.runtime_charged_s for s in restarts if s.policy_charged]
    return {
        "restarts": len(restarts),
        "restarts_by_kind": dict(sorted(Counter(s.action for s in restarts).items())),
        "stops": sum(s.action == "stop" for s in steps),
        "measured_mean_s": round(sum(measured) / len(measured), 3) if measured else None,
        "measured_max_s": round(max(measured), 3) if measured else None,
        "charged_total_s": sum(charged),
        "charged_restarts": len(charged),
        "not_stable": sum(not s.stable for s in restarts),
    }


def write_testbed_record(
    run: TestbedPolicyRun,
    outdir: Path,
    *,
    experiment: str,
    trace_name: str,
    cluster: ClusterSpec,
    meta: Mapping[str, Any],
) -> dict[str, Any]:
    """restarts.csv, then the run record (jobs.csv, events.csv, gpu_map.csv, summary.json with
    the testbed's restart metrics, failed jobs and warnings)."""
    outdir.mkdir(parents=True, exist_ok=True)
    rows = [asdict(s) for s in run.steps]
    write_text_atomic(outdir / "restarts.csv", csv_text(STEP_COLUMNS, rows))
    result = RunResult(
        kind="testbed",
        experiment=experiment,
        trace=trace_name,
        trace_seed=None,
        cluster=cluster.name,
        policy=run.policy,
        policy_seed=None,
        outcome=run.outcome,
    )
    testbed = {
        **restart_metrics(run.steps),
        "failed_jobs": run.failed,
        "warnings": run.warnings,
        "policy_wall_seconds": round(run.wall_s, 3),
    }
    return write_run_record(result, outdir, {**meta, "testbed": testbed})
