"""Pollux baseline for Figure 8(a): goodput-driven elastic scheduling, deadline-unaware.

See docs/policies/pollux.md.

Every 60 s the jobs advance on the measured ground truth, then a seeded NSGA-II re-allocates GPUs.
Counters: a job is accepted when it completes by its deadline, declined otherwise (Pollux's ratio
over completed jobs; all jobs complete). Each 60 s round yields a RoundSample whose `ce` is the sum
over jobs holding GPUs of their true throughput over one GPU at the same micro-batch and
accumulation (from the ground truth), divided by the cluster's GPUs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from reprise.data.clusters import ClusterSpec
from reprise.data.profiles import ThroughputProfiles
from reprise.data.traces import TraceJob
from reprise.errors import ConfigError, SimulationError
from reprise.policies.pollux.apps import FIXED_BATCH, Application, load_applications
from reprise.policies.pollux.blas import single_threaded_blas
from reprise.policies.pollux.compiled import run_nsga2 as run_in_pymoo_order
from reprise.policies.pollux.fused import run_fused
from reprise.policies.pollux.goodput import (
    FloatArray,
    IntArray,
    PerfParams,
    best_goodput,
    best_goodput_one,
    fit_perf_params,
)
from reprise.policies.pollux.search import (
    RESTART_DELAY,
    AllocationProblem,
    IntState,
    SearchResult,
    SpeedupTable,
    carry_over,
)
from reprise.records.outcome import JobOutcome, RoundSample, RunOutcome
from reprise.sim.engine import Engine
from reprise.sim.options import SimOptions

INTERVAL = 60
"""Scheduling interval of the artifact's simulator (seconds)."""
RESCALE_DELAY = 30
"""Seconds without progress after every (re)allocation."""
MAX_REPLICAS_CAP = 64
"""The simulator cannot place more replicas than this per job."""
MAX_SIM_TIME = 10**9
"""Safety stop: a run that is still going here cannot finish."""


@dataclass(frozen=True)
class WorkloadRow:
    """One row of the Pollux-format workload (the artifact's `elasticVpollux_p.csv`,
    docs/policies/pollux.md#workload)."""

    name: str
    time: int
    application: str
    num_replicas: int
    batch_size: int
    ddl: int


def pollux_workload(trace: list[TraceJob]) -> list[WorkloadRow]:
    """Re-key an ElasticFlow trace the way the artifact's Pollux workload file was made."""
    return [
        WorkloadRow(
            name=f"{job.model}-{job.idx}",
            time=job.submit_time,
            application=job.model,
            num_replicas=job.num_gpu,
            batch_size=job.batch_size,
            ddl=job.deadline,
        )
        for job in trace
    ]


@dataclass(slots=True, eq=False)
class PolluxJob:
    """Mutable state of one job; mirrors the artifact's simulated job (progress in epochs)."""

    trace: TraceJob
    row: WorkloadRow
    app: Application
    target_batch: int | None
    placement: tuple[int, ...] = ()
    """Replicas per used node, in node order (no zeros)."""
    alloc: IntState | None = None
    """Replicas per node (all nodes) of the last allocation; None before the first search."""
    atomic_bsz: int = 0
    accum_steps: int = 0
    rescale_left: int = 0
    progress: float = 0.0
    epoch: int = 0
    attained: int = 0
    """GPU-seconds held (the search's priority key)."""
    restarts: int | None = None
    start_time: int | None = None
    completion: int | None = None
    profile: dict[tuple[int, int, int], tuple[float, float]] = field(default_factory=dict)
    perf: PerfParams | None = None
    grad: tuple[float, float] | None = None
    speedup_key: tuple[Any, ...] | None = None
    speedup_plane: FloatArray | None = None
    base_goodput: float = 0.0

    @property
    def max_profiled_replicas(self) -> int:
        return max((k[1] for k in self.profile), default=0)


@dataclass
class _Counters:
    fits: int = 0
    searches: int = 0
    generations: int = 0
    evaluations: int = 0
    speedups: int = 0
    mating_rounds: int = 0
    reallocations: int = 0
    bsz_memo: dict[tuple[Any, ...], tuple[int, int]] = field(default_factory=dict)


class _Model:
    """The per-job model updates (batch size choice, fits), sharing memo tables between jobs."""

    def __init__(self, counters: _Counters) -> None:
        self.c = counters

    def choose_batch(self, job: PolluxJob) -> None:
        """Pick atomic batch and accumulation steps for the current placement (artifact rule)."""
        app = job.app
        nodes, replicas = len(job.placement), sum(job.placement)
        batch = job.target_batch
        if batch is None and job.perf is None:
            batch = max(app.init_batch_size, app.min_local_bsz * replicas)
        if batch is None:
            assert job.perf is not None and job.grad is not None
            key = (app.name, job.perf, job.grad, nodes, replicas)
            hit = self.c.bsz_memo.get(key)
            if hit is None:
                _, atomic, accum = best_goodput_one(
                    job.perf,
                    job.grad,
                    app.init_batch_size,
                    app.max_batch_size,
                    (app.min_local_bsz, app.max_local_bsz),
                    nodes,
                    replicas,
                )
                hit = (atomic, accum)
                self.c.bsz_memo[key] = hit
            atomic, accum = hit
        else:
            local = math.ceil(batch / replicas - 1e-8)
            accum = math.ceil(local / app.max_local_bsz - 1e-8) - 1
            if replicas == 1 and batch > app.init_batch_size:
                accum = max(1, accum)
            atomic = math.ceil(local / (accum + 1) - 1e-8)
        count = replicas * (accum + 1)
        job.accum_steps = accum
        job.atomic_bsz = min(atomic, int(app.max_batch_size / count))

    def observe(
        self,
        job: PolluxJob,
        nodes: int,
        replicas: int,
        atomic: int,
        step: float,
        sync: float,
        grad: tuple[float, float],
    ) -> None:
        """Record gradient statistics and, for an unseen configuration, refit the step model."""
        job.grad = grad
        key = (nodes, replicas, atomic)
        if key in job.profile:
            return
        job.profile[key] = (step, sync)
        keys = np.array(list(job.profile), dtype=np.int64)
        times = np.array(list(job.profile.values()), dtype=np.float64)
        job.perf = fit_perf_params(
            keys[:, 0], keys[:, 1], keys[:, 2], times[:, 0] - times[:, 1], times[:, 0]
        )
        self.c.fits += 1

    def advance(self, job: PolluxJob, now: int, seconds: int) -> None:
        """Run `job` for `seconds` from `now` on the ground truth (artifact's step semantics)."""
        if not job.placement or job.completion is not None:
            return
        app = job.app
        gpus = sum(job.placement)
        delay = min(job.rescale_left, seconds)
        now += delay
        job.attained += delay * gpus
        job.rescale_left -= delay
        seconds -= delay
        nodes = len(job.placement)
        while seconds > 0 and job.completion is None:
            if job.epoch >= app.max_epochs:
                raise SimulationError(f"Pollux job {job.row.name} ran past its last epoch")
            atomic, accum = job.atomic_bsz, job.accum_steps
            batch = gpus * atomic * (accum + 1)
            scale = batch / app.init_batch_size
            step, sync = app.step_sync(job.placement, atomic)
            grad_sqr, grad_var = app.grad_stats(batch, job.epoch)
            gain = (grad_var + grad_sqr) / (grad_var / scale + grad_sqr)
            self.observe(job, nodes, gpus, atomic, step, sync, (grad_sqr, grad_var))
            total = step + (step - sync) * accum
            rate = gain / total
            target = app.progress_at(job.epoch + 1)
            if job.progress + rate * seconds < target:
                job.progress += rate * seconds
                now += seconds
                job.attained += seconds * gpus
                seconds = 0
            else:
                delta = round(float((target - job.progress) / rate))
                job.epoch += 1
                if job.epoch > app.max_epochs - 1:
                    job.completion = now + delta
                job.progress = target
                now += delta
                job.attained += delta * gpus
                seconds -= delta
            # the batch size is re-optimised after every stretch (epoch boundary or interval end)
            self.choose_batch(job)

    def reallocate(self, job: PolluxJob, row: IntState, now: int) -> None:
        placement = tuple(int(v) for v in row if v)
        job.alloc = row.copy()
        if placement:
            job.placement = placement
            self.choose_batch(job)
            job.rescale_left = RESCALE_DELAY
            job.restarts = 0 if job.restarts is None else job.restarts + 1
            if job.start_time is None:
                job.start_time = now
        else:
            job.placement = ()
            job.atomic_bsz = 0


class RoundSpeedups:
    """Speed-up source of one search: Pollux's model goodput over the fair-share goodput."""

    def __init__(self, jobs: list[PolluxJob], fair_replicas: float) -> None:
        self.fair_replicas = fair_replicas
        self.modelled = np.array([j.perf is not None for j in jobs])
        perf = [j.perf if j.perf is not None else PerfParams(1, 1, 1, 1, 1, 1, 1) for j in jobs]
        self.params = np.array(perf, dtype=np.float64)
        self.grad = np.array([j.grad or (0.0, 0.0) for j in jobs], dtype=np.float64)
        self.init = np.array([j.app.init_batch_size for j in jobs], dtype=np.float64)
        self.max_batch = np.array([j.app.max_batch_size for j in jobs], dtype=np.float64)
        self.min_atomic = np.array([j.app.min_local_bsz for j in jobs], dtype=np.float64)
        self.max_atomic = np.array([j.app.max_local_bsz for j in jobs], dtype=np.float64)
        self.base = np.array([j.base_goodput for j in jobs], dtype=np.float64)

    def __call__(self, jobs: IntArray, nodes: IntArray, replicas: IntArray) -> FloatArray:
        out = replicas / self.fair_replicas
        model = self.modelled[jobs] & (replicas > 0)
        if model.any():
            k = jobs[model]
            good, _, _ = best_goodput(
                self.params[k],
                self.grad[k],
                self.init[k],
                self.max_batch[k],
                (self.min_atomic[k], self.max_atomic[k]),
                nodes[model],
                replicas[model],
            )
            with np.errstate(divide="ignore", invalid="ignore"):
                out[model] = good / self.base[k]
        return np.asarray(out, dtype=np.float64)


def _prepare_speedups(
    jobs: list[PolluxJob], fair_nodes: float, fair_replicas: float, shape: tuple[int, int]
) -> FloatArray:
    """Stack each job's cached speed-up plane, starting a fresh one where its model changed."""
    planes = []
    for job in jobs:
        key: tuple[Any, ...]
        key = (job.perf, job.grad, fair_replicas) if job.perf is not None else (fair_replicas,)
        if job.speedup_key != key or job.speedup_plane is None:
            plane = np.full(shape, np.nan)
            plane[0, 0] = 0.0
            job.speedup_key = key
            job.speedup_plane = plane
            if job.perf is not None:
                assert job.grad is not None
                app = job.app
                job.base_goodput, _, _ = best_goodput_one(
                    job.perf,
                    job.grad,
                    app.init_batch_size,
                    app.max_batch_size,
                    (app.min_local_bsz, app.max_local_bsz),
                    fair_nodes,
                    fair_replicas,
                )
        planes.append(job.speedup_plane)
    return np.stack(planes)


def _true_speedup(job: PolluxJob) -> float:
    """Samples/s of the job's configuration over one GPU at the same micro-batch (for `ce`)."""
    app, atomic, accum = job.app, job.atomic_bsz, job.accum_steps
    step, sync = app.step_sync(job.placement, atomic)
    one_step, one_sync = app.step_sync((1,), atomic)
    many = sum(job.placement) / (step + (step - sync) * accum)
    one = 1.0 / (one_step + (one_step - one_sync) * accum)
    return many / one


def simulate(
    trace: list[TraceJob],
    cluster: ClusterSpec,
    profiles: ThroughputProfiles,
    options: SimOptions,
    horizon: int | None = None,
) -> RunOutcome:
    """Run Pollux on `trace` (the profiles are unused: Pollux has its own ground truth).

    With a `horizon` (benchmarks, profiling) the run stops after that many simulated seconds
    from the first round; jobs unfinished by then are reported as not completed (missed).
    """
    del profiles
    if not trace:
        raise ConfigError("the Pollux policy needs at least one job")
    run = _PolluxRun(trace, cluster, options)
    with single_threaded_blas():
        run.run(horizon)
    return _result(run.jobs, run.engine, run.counters, options, cut_off=horizon is not None)


class _PolluxRun:
    """One run: the jobs, the cluster's shape, the search's carried-over front, and the rounds
    (docs/policies/pollux.md). Pollux keeps its own 60 s clock; the engine keeps the round
    samples, the progress and the outcome."""

    def __init__(self, trace: list[TraceJob], cluster: ClusterSpec, options: SimOptions) -> None:
        apps = load_applications(options.data_root, {job.model for job in trace})
        rows = pollux_workload(trace)
        self.jobs = [
            PolluxJob(job, row, apps[row.application], FIXED_BATCH.get(row.application))
            for job, row in zip(trace, rows, strict=True)
        ]
        num_nodes, self.capacity = cluster.num_nodes, cluster.gpus_per_node
        self.total_gpus = num_nodes * self.capacity
        share = 1.0 / self.total_gpus  # dominant share of one replica (one GPU)
        self.fair_nodes = float(math.ceil(num_nodes * share))
        self.plane_shape = (num_nodes + 1, min(MAX_REPLICAS_CAP, self.total_gpus) + 1)
        self.rng = np.random.default_rng(options.seed)
        self.pymoo_draws = options.pollux_pymoo_draws
        self.counters = _Counters()
        self.model = _Model(self.counters)
        self.prev_front: IntState | None = None
        self.prev_keys: list[str] = []
        self.engine = Engine(trace, cluster, options, label="pollux")
        self.first = min(job.submit_time for job in trace)
        self.arriving = sorted(self.jobs, key=lambda j: j.row.time)
        self.next_arrival = 0
        self.present: list[PolluxJob] = []
        self.done = 0

    def run(self, horizon: int | None) -> None:
        """Every round until all jobs completed (or the `horizon` passed): progress over the
        last interval, completions, arrivals, then the search's re-allocation."""
        # nothing happens before the first arrival: start one interval before the first round in
        # which a job is present (rounds fall on multiples of the interval, as upstream's clock)
        now = INTERVAL * math.ceil(self.first / INTERVAL) - INTERVAL
        start = now
        while self.done < len(self.jobs):
            for job in self.present:
                self.model.advance(job, now, INTERVAL)
            now += INTERVAL
            if now > MAX_SIM_TIME:
                raise SimulationError("Pollux simulation does not terminate")
            if horizon is not None and now > start + horizon:
                break
            self.retire()
            self.arrive(now)
            self.reallocate(now)
            self.engine.add_round(_sample(now, self.present, self.total_gpus))

    def retire(self) -> None:
        """Jobs that completed in the last interval leave the cluster."""
        finished = [j for j in self.present if j.completion is not None]
        if finished:
            self.done += len(finished)
            for _ in finished:
                self.engine.job_done()
            self.present = [j for j in self.present if j.completion is None]

    def arrive(self, now: int) -> None:
        """Jobs submitted by `now` join, in submission order."""
        arriving = self.arriving
        while self.next_arrival < len(arriving) and arriving[self.next_arrival].row.time <= now:
            self.present.append(arriving[self.next_arrival])
            self.next_arrival += 1

    def reallocate(self, now: int) -> None:
        """The seeded search over the present jobs; each job whose row changed is re-allocated."""
        # the search's job order: least attained service first, then submission, then trace
        order = sorted(self.present, key=lambda j: (j.attained, j.row.time, j.trace.idx))
        if not order:
            return
        self.prev_front, chosen_row_of = _search(
            order,
            self.prev_front,
            self.prev_keys,
            now,
            self.fair_nodes,
            self.plane_shape,
            self.capacity,
            self.total_gpus,
            self.rng,
            self.counters,
            self.pymoo_draws,
        )
        self.prev_keys = [j.row.name for j in order]
        for i, job in enumerate(order):
            row = chosen_row_of[:, i]
            if job.alloc is None or not np.array_equal(row, job.alloc):
                self.model.reallocate(job, row, now)
                self.counters.reallocations += 1


def run_nsga2(
    problem: AllocationProblem, initial: IntState, rng: np.random.Generator, pymoo_draws: bool
) -> SearchResult:
    """The round's allocation search: one candidate at a time (`fused`), or with pymoo's draw
    order (`compiled`, the switch `pollux_pymoo_draws`); docs/policies/pollux.md."""
    search = run_in_pymoo_order if pymoo_draws else run_fused
    return search(problem, initial, rng)


def _search(
    order: list[PolluxJob],
    prev_front: IntState | None,
    prev_keys: list[str],
    now: int,
    fair_nodes: float,
    plane_shape: tuple[int, int],
    capacity: int,
    total_gpus: int,
    rng: np.random.Generator,
    counters: _Counters,
    pymoo_draws: bool,
) -> tuple[IntState, IntState]:
    """One scheduling round's search; returns (final front, chosen allocation)."""
    num_nodes = plane_shape[0] - 1
    base = np.zeros((num_nodes, len(order)), dtype=np.int8)
    for i, job in enumerate(order):
        if job.alloc is not None:
            base[:, i] = job.alloc
    max_replicas = np.array(
        [
            1
            if j.row.application in FIXED_BATCH
            else min(
                max(2 * j.max_profiled_replicas, 1),
                MAX_REPLICAS_CAP,
                j.app.max_batch_size // j.app.min_local_bsz,
            )
            for j in order
        ],
        dtype=np.int64,
    )
    # fair share as the artifact computes it (through the dominant share, in floating point)
    fair_replicas = float(math.ceil(1.0 / (1.0 / total_gpus) / len(order)))
    planes = _prepare_speedups(order, fair_nodes, fair_replicas, plane_shape)
    table = SpeedupTable(planes, RoundSpeedups(order, fair_replicas))
    ages = np.array([now - j.row.time for j in order], dtype=np.float64)
    restarts = np.array([j.restarts or 0 for j in order], dtype=np.float64)
    factor = np.maximum(ages - restarts * RESTART_DELAY, 0.0) / (ages + RESTART_DELAY)
    caps = np.full(num_nodes, capacity, dtype=np.int64)
    problem = AllocationProblem(base, max_replicas, caps, table, factor)
    initial = carry_over(prev_front, prev_keys, [j.row.name for j in order], base)
    result = run_nsga2(problem, initial, rng, pymoo_draws)
    for i, job in enumerate(order):
        job.speedup_plane = table.values[i]
    counters.searches += 1
    counters.generations += result.stats.generations
    counters.evaluations += result.stats.evaluations
    counters.mating_rounds += result.stats.mating_rounds
    counters.speedups += table.computed
    return result.front, result.front[:, :, result.best]


def _sample(now: int, present: list[PolluxJob], total_gpus: int) -> RoundSample:
    """The round after re-allocation; `ce` = summed true speed-ups over one GPU, per GPU."""
    running = [j for j in present if j.placement]
    return RoundSample(
        time=float(now),
        gpus_in_use=sum(sum(j.placement) for j in running),
        ce=sum(_true_speedup(j) for j in running) / total_gpus,
        running=len(running),
        pending=len(present) - len(running),
    )


def _result(
    jobs: list[PolluxJob],
    engine: Engine,
    counters: _Counters,
    options: SimOptions,
    cut_off: bool = False,
) -> RunOutcome:
    outcomes: list[JobOutcome] = []
    met = missed = 0
    jct_sum = 0
    for job in jobs:
        tj = job.trace
        if job.completion is None and not cut_off:
            raise SimulationError(f"Pollux job {job.row.name} never completed")
        verdict: bool | None = None
        if not tj.best_effort:
            verdict = job.completion is not None and job.completion <= job.row.ddl
            met += verdict
            missed += not verdict
        if job.completion is not None:
            jct_sum += job.completion - job.row.time
        outcomes.append(
            JobOutcome.of(
                tj,
                admitted=True,
                start_time=None if job.start_time is None else float(job.start_time),
                end_time=None if job.completion is None else float(job.completion),
                gpus_at_end=sum(job.placement),
                met_deadline_published=verdict,
                preempt=job.restarts or 0,
            )
        )
    extra: dict[str, Any] = {
        "seed": options.seed,
        "searches": counters.searches,
        "generations": counters.generations,
        "evaluations": counters.evaluations,
        "speedup_evaluations": counters.speedups,
        "mating_rounds": counters.mating_rounds,
        "fits": counters.fits,
        "reallocations": counters.reallocations,
        "average_jct": jct_sum / max(sum(j.completion is not None for j in jobs), 1),
    }
    engine.accepted, engine.declined = met, missed
    return engine.outcome(outcomes, extra)
