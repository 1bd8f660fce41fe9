"""`snakemake functionality`: ElasticFlow's functionality test on our testbed. A generated,
seeded 10-job ResNet-50/CIFAR-10 trace on one 8-slot node, each policy's rounds carried out by
the elastic runtime; beside each testbed count, the same trace simulated with the restart
seconds the testbed measured, simulated with upstream's modelled overhead, and the published
count. Where a job's outcome differs, the table names the job and why.

Sits above `sim` and `testbed`, like `reprise.testbed_scheduler`.
"""

from __future__ import annotations

import csv
import io
import json
import math
import random
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from reprise.atomic import write_text_atomic
from reprise.data.clusters import ClusterSpec, load_cluster_spec
from reprise.data.fetch import sha256_of
from reprise.data.generate import HEADER
from reprise.data.profiles import ThroughputProfiles, load_profiles
from reprise.data.traces import load_trace
from reprise.data.validate import check_trace
from reprise.errors import ConfigError
from reprise.policies.registry import entry_of
from reprise.records.outcome import JobOutcome
from reprise.records.result import RunResult
from reprise.records.writer import write_run_record
from reprise.sim.engine import SimulatedExecutor
from reprise.sim.options import SimOptions
from reprise.testbed.frame import provisioned, say
from reprise.testbed.runtime.client import ElasticRuntime, RuntimeSettings
from reprise.testbed.runtime.figure12b import csv_text
from reprise.testbed_scheduler import TrainerSettings, run_policy, write_testbed_record

EXPERIMENT = "functionality"


# ---- the trace ------------------------------------------------------------------------------
@dataclass(frozen=True)
class TraceParams:
    """The generated trace (upstream's is not published): every number drawn from `seed`."""

    num_jobs: int = 10
    seed: int = 6
    model: str = "resnet50_cifar10"
    batch_sizes: tuple[int, ...] = (64, 128, 256)
    gpus: tuple[int, ...] = (1, 2, 4, 8)
    lam: float = 600.0
    """Mean inter-arrival seconds (exponential)."""
    min_duration: float = 600.0
    max_duration: float = 3600.0
    """A job's duration at its requested GPUs is uniform in [min, max] seconds."""
    min_ddl: float = 0.8
    max_ddl: float = 1.8
    """Its relative deadline is uniform in [min_ddl, max_ddl] x duration."""


def trace_rows(params: TraceParams, profiles: ThroughputProfiles) -> list[tuple[Any, ...]]:
    rng = random.Random(params.seed)
    rows: list[tuple[Any, ...]] = []
    arrival = 0.0
    for i in range(params.num_jobs):
        if i:
            arrival += -math.log(1.0 - rng.random()) * params.lam
        batch = rng.choice(params.batch_sizes)
        gpus = rng.choice(params.gpus)
        duration = rng.uniform(params.min_duration, params.max_duration)
        iterations = int(duration * profiles.tput(params.model, batch, gpus))
        deadline = int(arrival) + int(rng.uniform(params.min_ddl, params.max_ddl) * duration)
        rows.append(
            (i, int(arrival), iterations, params.model, deadline, batch, gpus, int(duration), 0)
        )
    return rows


def write_trace(
    params: TraceParams, profiles: ThroughputProfiles, cluster: ClusterSpec, dest: Path
) -> int:
    """Generate, check like any trace (its jobs must fit `cluster`), write."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(HEADER)
    writer.writerows(trace_rows(params, profiles))
    tmp = dest.with_name(f".{dest.name}.part")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp.write_text(out.getvalue())
    try:
        check_trace(
            tmp, load_trace(tmp, profiles), profiles, [(f"cluster {cluster.name}", cluster)]
        )
        tmp.replace(dest)
    finally:
        tmp.unlink(missing_ok=True)
    return params.num_jobs


def trace_name(path: Path) -> str:
    """A trace's name in run records: its file's stem; a one-model trace generated for an
    experiment (results/<experiment>/trace.csv) is named after the experiment."""
    return path.parent.name if path.stem == "trace" else path.stem


# ---- settings -------------------------------------------------------------------------------
@dataclass(frozen=True)
class FunctionalitySettings:
    policies: tuple[str, ...]
    slot: int
    trainer: TrainerSettings
    runtime: RuntimeSettings = field(default_factory=RuntimeSettings)
    gpu_type: str = "A100"


def settings_from_config(entry: Mapping[str, Any]) -> FunctionalitySettings:
    """The `testbed.functionality` block of config/config.yaml (schema-checked)."""
    trainer = dict(entry.get("trainer", {}))
    slot = int(entry.get("slot", 240))
    runtime = {"slot_s": float(slot), **dict(entry.get("runtime", {}))}
    policies = tuple(str(p) for p in entry["policies"])
    for p in policies:
        entry_of(p)
    return FunctionalitySettings(
        policies=policies,
        slot=slot,
        trainer=TrainerSettings(
            models=dict(trainer.get("models", {"resnet50_cifar10": "resnet50"})),
            size=str(trainer.get("size", "tiny")),
            global_batch=trainer.get("global_batch"),
            threads=int(trainer.get("threads", 1)),
            seed=int(trainer.get("seed", 0)),
        ),
        runtime=RuntimeSettings(**runtime),
        gpu_type=str(entry.get("gpu_type", "A100")),
    )


def trace_params(entry: Mapping[str, Any]) -> TraceParams:
    """The one-model trace of a `testbed.<name>` block whose `trace` is a mapping."""
    spec = dict(entry["trace"])
    unknown = set(spec) - set(TraceParams.__dataclass_fields__)
    if unknown:
        raise ConfigError(
            f"testbed.functionality.trace: unknown key(s) {', '.join(sorted(unknown))}"
        )
    for key in ("batch_sizes", "gpus"):
        if key in spec:
            spec[key] = tuple(int(v) for v in spec[key])
    return TraceParams(**spec)


# ---- the testbed run ------------------------------------------------------------------------
def run_functionality(
    *,
    inventory_path: Path,
    state_dir: Path,
    outdir: Path,
    trace_path: Path,
    cluster_spec: Path,
    profile_dir: Path,
    settings: FunctionalitySettings,
    image_record: Path | None = None,
    progress: Callable[[str], None] = say,
    experiment: str = EXPERIMENT,
) -> dict[str, Any]:
    """Provision, run every policy on one runtime (its agents and slot trainers started once),
    tear down, write one testbed record per policy below `outdir` and a summary.json."""
    profiles = load_profiles(profile_dir)
    trace = load_trace(trace_path, profiles)
    cluster = load_cluster_spec(cluster_spec)
    options = SimOptions(slot=settings.slot, gpu_type=settings.gpu_type)
    per_policy: dict[str, Any] = {}
    with (
        provisioned(inventory_path, state_dir, outdir / "run", image_record, progress) as (
            run,
            frame,
        ),
        ElasticRuntime(run, settings.runtime, progress) as rt,
    ):
        for policy in settings.policies:
            progress(f"{policy}: {len(trace)} jobs on {cluster.name}")
            result = run_policy(
                rt, trace, cluster, profiles, policy, options, settings.trainer, f"{policy}-"
            )
            o = result.outcome
            progress(
                f"{policy}: {o.accepted} accepted, {o.declined} declined; "
                f"{len(result.steps)} steps in {result.wall_s:.0f} s"
            )
            meta = {
                "trace": trace_name(trace_path),
                "inputs": {
                    "trace": {trace_path.name: sha256_of(trace_path)},
                    "cluster_spec": {cluster_spec.name: sha256_of(cluster_spec)},
                    "profiles": {p.name: sha256_of(p) for p in sorted(profile_dir.glob("*.csv"))},
                },
                "options": {"slot": options.slot, "gpu_type": options.gpu_type},
                "runtime": asdict(settings.runtime),
                "trainer": asdict(settings.trainer),
            }
            summary = write_testbed_record(
                result,
                outdir / policy,
                experiment=experiment,
                trace_name=trace_name(trace_path),
                cluster=cluster,
                meta=meta,
            )
            per_policy[policy] = {**summary["metrics"], **summary["testbed"]}
    summary = {
        **frame.meta(experiment),
        "settings": {
            "policies": list(settings.policies),
            "slot": settings.slot,
            "trace": trace_path.name,
            "cluster_spec": cluster.name,
            "trainer": asdict(settings.trainer),
            "runtime": asdict(settings.runtime),
        },
        "policies": per_policy,
    }
    write_text_atomic(outdir / "summary.json", json.dumps(summary, indent=2) + "\n")
    return summary


# ---- the simulations beside it --------------------------------------------------------------
class ReplayExecutor:
    """Charges what the testbed charged: the runtime's seconds for (round time, job) where the
    policy charged a measured restart, nothing where the testbed re-placed nothing. A charge
    asked for at a round the testbed never had is counted (the runs diverged). Its charges
    are measured ones, so every policy pays them as on the testbed."""

    measured = True

    def __init__(self, restarts_csv: Path) -> None:
        self.charged: dict[tuple[float, int], float] = {}
        with restarts_csv.open(newline="") as fh:
            for row in csv.DictReader(fh):
                if row["action"] != "stop" and row["policy_charged"] == "True":
                    key = (float(row["time"]), int(row["job"]))
                    self.charged[key] = self.charged.get(key, 0.0) + float(row["runtime_charged_s"])
        self.rounds_seen: set[float] = {t for t, _ in self.charged}
        self.asked: set[tuple[float, int]] = set()
        self.paid: dict[int, float] = {}

    def apply(self, now: float, changes: Sequence[Any], restart: bool) -> dict[int, float]:
        out = {c.job: self.charged.get((now, c.job), 0.0) for c in changes}
        for c in changes:
            self.asked.add((now, c.job))
            self.paid[c.job] = self.paid.get(c.job, 0.0) + out[c.job]
        return out

    @property
    def unmatched(self) -> int:
        """Measured charges the replay never asked for (0 when the runs agree)."""
        return len(set(self.charged) - self.asked)


class RecordingExecutor(SimulatedExecutor):
    """Upstream's modelled overhead, with the total each job paid kept."""

    def __init__(self, cluster_gpus: int) -> None:
        super().__init__(cluster_gpus)
        self.paid: dict[int, float] = {}

    def apply(self, now: float, changes: Sequence[Any], restart: bool) -> dict[int, float]:
        out = super().apply(now, changes, restart)
        for job, seconds in out.items():
            self.paid[job] = self.paid.get(job, 0.0) + seconds
        return out


def simulate_beside(
    *,
    testbed_dir: Path,
    trace_path: Path,
    cluster_spec: Path,
    profile_dir: Path,
    settings: FunctionalitySettings,
    sim_dir: Path,
    experiment: str = EXPERIMENT,
) -> dict[str, dict[str, Any]]:
    """For each policy: its run simulated with the testbed's measured restarts (replayed) and
    with upstream's modelled overhead; both written as sim run records below `sim_dir`."""
    from reprise.testbed_scheduler import policy_runner

    profiles = load_profiles(profile_dir)
    trace = load_trace(trace_path, profiles)
    cluster = load_cluster_spec(cluster_spec)
    options = SimOptions(slot=settings.slot, gpu_type=settings.gpu_type)
    out: dict[str, dict[str, Any]] = {}
    for policy in settings.policies:
        run = policy_runner(policy)
        replay = ReplayExecutor(testbed_dir / policy / "restarts.csv")
        measured = run(trace, cluster, profiles, options, replay)
        model = RecordingExecutor(cluster.num_gpus)
        modelled = run(trace, cluster, profiles, options, model)
        for mode, outcome in (("measured", measured), ("modelled", modelled)):
            record = RunResult(
                kind="sim",
                experiment=experiment,
                trace=trace_name(trace_path),
                trace_seed=None,
                cluster=cluster.name,
                policy=policy,
                policy_seed=None,
                outcome=outcome,
            )
            write_run_record(
                record,
                sim_dir / mode / policy,
                {
                    "overheads": mode,
                    "options": {"slot": options.slot, "gpu_type": options.gpu_type},
                },
            )
        out[policy] = {
            "measured": measured,
            "modelled": modelled,
            "measured_paid": replay.paid,
            "modelled_paid": model.paid,
            "unmatched": replay.unmatched,
        }
    return out


# ---- the table ------------------------------------------------------------------------------
TABLE_COLUMNS = (
    "policy",
    "label",
    "testbed_accepted",
    "testbed_declined",
    "sim_measured_accepted",
    "sim_measured_declined",
    "sim_modelled_accepted",
    "sim_modelled_declined",
    "published_accepted",
    "published_declined",
    "restarts",
    "restart_mean_s",
    "restart_max_s",
    "charged_total_s",
    "not_stable",
    "failed_jobs",
    "differences",
    "cluster",
)


@dataclass(frozen=True)
class Fate:
    """What the table compares of one job across runs."""

    idx: int
    job_id: str
    admitted: bool
    end_time: float | None
    deadline: int | None
    met: bool | None
    """Counted met by the policy's own rule (met_deadline_published)."""

    @classmethod
    def of(cls, job: JobOutcome) -> Fate:
        return cls(
            job.idx,
            job.job_id,
            job.admitted,
            job.end_time,
            job.deadline,
            job.met_deadline_published,
        )

    @classmethod
    def read(cls, jobs_csv: Path) -> list[Fate]:
        def num(text: str) -> float | None:
            return float(text) if text else None

        with jobs_csv.open(newline="") as fh:
            return [
                cls(
                    int(r["idx"]),
                    r["job_id"],
                    r["admitted"] == "1",
                    num(r["end_time"]),
                    int(r["deadline"]) if r["deadline"] else None,
                    None
                    if r["met_deadline_published"] == ""
                    else r["met_deadline_published"] == "1",
                )
                for r in csv.DictReader(fh)
            ]

    def describe(self) -> str:
        if not self.admitted:
            return "declined at admission"
        if self.end_time is None:
            return "not finished"
        verdict = "counted met" if self.met else "counted missed"
        return f"{verdict} (end {self.end_time:g}, deadline {self.deadline})"


def differences(
    a: Sequence[Fate],
    b: Sequence[Fate],
    a_paid: Mapping[int, float],
    b_paid: Mapping[int, float],
    a_name: str,
    b_name: str,
) -> list[str]:
    """One sentence per job whose fate differs between the two runs, with the restart seconds
    each charged it (the only input the two runs differ in)."""
    notes: list[str] = []
    other = {j.idx: j for j in b}
    for job in a:
        twin = other[job.idx]
        if (job.admitted, job.met) == (twin.admitted, twin.met):
            continue
        mine, theirs = a_paid.get(job.idx, 0.0), b_paid.get(job.idx, 0.0)
        if mine != theirs:
            why = f"restarts charged it {mine:g} s {a_name} vs {theirs:g} s {b_name}"
        else:
            why = (
                f"same restart seconds charged to it ({mine:g} s); other jobs' restarts moved "
                f"the plan ({sum(a_paid.values()):g} s {a_name} vs {sum(b_paid.values()):g} s "
                f"{b_name} in all)"
            )
        notes.append(
            f"job {job.job_id}: {job.describe()} {a_name}, {twin.describe()} {b_name}: {why}"
        )
    return notes


def load_paper(path: Path) -> dict[str, Any]:
    paper: dict[str, Any] = yaml.safe_load(path.read_text())
    for key in ("published", "source"):
        if key not in paper:
            raise ConfigError(f"{path}: no {key!r} (the published counts and their source)")
    return paper


def _testbed_paid(restarts_csv: Path) -> dict[int, float]:
    paid: dict[int, float] = {}
    with restarts_csv.open(newline="") as fh:
        for row in csv.DictReader(fh):
            if row["action"] != "stop" and row["policy_charged"] == "True":
                job = int(row["job"])
                paid[job] = paid.get(job, 0.0) + float(row["runtime_charged_s"])
    return paid


def functionality_table(
    testbed_dir: Path,
    sims: Mapping[str, Mapping[str, Any]],
    paper_path: Path,
) -> list[dict[str, Any]]:
    """One row per policy: testbed, simulated with measured restarts, simulated with the
    modelled overhead, published; `differences` names each job whose fate differs and why."""
    paper = load_paper(paper_path)
    summary = json.loads((testbed_dir / "summary.json").read_text())
    rows: list[dict[str, Any]] = []
    for policy, stats in summary["policies"].items():
        testbed = Fate.read(testbed_dir / policy / "jobs.csv")
        sim = sims[policy]
        replayed = [Fate.of(j) for j in sim["measured"].jobs]
        modelled = [Fate.of(j) for j in sim["modelled"].jobs]
        tb_paid = _testbed_paid(testbed_dir / policy / "restarts.csv")
        published = paper["published"].get(policy, {})
        notes = differences(
            testbed, replayed, tb_paid, sim["measured_paid"], "on the testbed", "replayed"
        )
        if sim["unmatched"]:
            notes.append(f"{sim['unmatched']} measured charge(s) never asked for in the replay")
        notes += differences(
            testbed,
            modelled,
            tb_paid,
            sim["modelled_paid"],
            "on the testbed",
            "with the modelled overhead",
        )
        failed = stats.get("failed_jobs", {})
        rows.append(
            {
                "policy": policy,
                "label": entry_of(policy).label,
                "testbed_accepted": stats["accepted"],
                "testbed_declined": stats["declined"],
                "sim_measured_accepted": sim["measured"].accepted,
                "sim_measured_declined": sim["measured"].declined,
                "sim_modelled_accepted": sim["modelled"].accepted,
                "sim_modelled_declined": sim["modelled"].declined,
                "published_accepted": published.get("accepted"),
                "published_declined": published.get("declined"),
                "restarts": stats.get("restarts"),
                "restart_mean_s": stats.get("measured_mean_s"),
                "restart_max_s": stats.get("measured_max_s"),
                "charged_total_s": stats.get("charged_total_s"),
                "not_stable": stats.get("not_stable"),
                "failed_jobs": "; ".join(f"{n}: {w}" for n, w in failed.items()),
                "differences": " | ".join(notes),
                "cluster": summary["cluster"],
            }
        )
    for policy, counts in paper["published"].items():
        if policy not in summary["policies"]:
            rows.append(
                {
                    "policy": policy,
                    "label": entry_of(policy).label,
                    "published_accepted": counts.get("accepted"),
                    "published_declined": counts.get("declined"),
                    "differences": "not run: "
                    + counts.get("why_not_run", "not in this run's policies"),
                    "cluster": summary["cluster"],
                }
            )
    return rows


def write_table(rows: Sequence[Mapping[str, Any]], out: Path) -> None:
    write_text_atomic(out, csv_text(TABLE_COLUMNS, rows))


def print_counts(rows: Sequence[Mapping[str, Any]]) -> None:
    """Accepted/declined per policy on stderr, as upstream's functionality test prints them."""
    for r in rows:
        if r.get("testbed_accepted") is None:
            continue
        print(
            f"{r['label']}: testbed {r['testbed_accepted']}/{r['testbed_declined']}, "
            f"simulated {r['sim_modelled_accepted']}/{r['sim_modelled_declined']}, "
            f"published {r['published_accepted']}/{r['published_declined']} (accepted/declined)",
            file=sys.stderr,
        )
