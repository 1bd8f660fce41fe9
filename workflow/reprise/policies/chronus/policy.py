"""Chronus baseline: lease-based deadline scheduling with its own fixed-step time loop.

See docs/policies/chronus.md.

`simulate_greedy` is upstream's no-Gurobi path (every lease takes the latest-first packing);
`simulate_milp` solves each lease's MIP with HiGHS and falls back to the greedy on failure.
Both take an executor: on a testbed the resume cost is the measured one
(docs/policies/chronus.md#on-a-testbed).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from reprise.data.clusters import ClusterSpec
from reprise.data.profiles import ThroughputProfiles
from reprise.data.traces import INT64_MAX, TraceJob, submission_order
from reprise.errors import ConfigError, SimulationError
from reprise.policies.chronus.solver import (
    IntArray,
    LeaseItem,
    Plan,
    packable,
    select_latest_first,
    solve_lease_mip,
)
from reprise.records.outcome import JobOutcome, RoundSample, RunOutcome
from reprise.sim.engine import AllocationChange, Engine, Executor
from reprise.sim.options import SimOptions

# Notes (docs/policies/chronus.md; upstream `alg/scheduler/time_aware_with_lease.py`, as run by
# the figure scripts):
# * Trace conversion (docs/policies/chronus.md#conversion) happens here: one user per job,
#   relative deadline = ddl - submit,
#   a single deadline option of value 10, best-effort flag dropped (best-effort jobs are ordinary
#   deadline jobs for Chronus and count in its ratio).
# * Placement is modelled by GPU counts only. Upstream's local-search / consolidate / random
#   placers always succeed once the batch's GPU count fits the free GPUs (they fall back to
#   splitting a job over nodes), progress does not depend on the topology (factor 1.0), and no
#   Chronus output lists GPUs per job, so node choice (and its unseeded `random`) is invisible.
# * Unreachable with the figure settings and left out: force-guaranteed jobs and preemption of
#   opportunistic jobs (lease terms <= 30 s only), node power-off, duration noise (sigma 0),
#   the "filling" step (runs only at odd times, never).
# * Verdict (docs/policies/chronus.md#outputs): met iff end - submit <= the job's deadline,
#   tightened to its lease
#   boundary when Chronus guaranteed it; every job is counted.

SolverMode = Literal["greedy", "milp"]

LEASE = 240
"""Lease term in seconds (`--lease_term_interval=240` in every figure script)."""
ADMISSION_PERIOD = 240
"""Admission and opportunistic pass period; hard-coded BEST_SLOT upstream
(docs/policies/chronus.md#parameters)."""
RESTART_COST = 0.4 + 0.1
"""Resume + checkpoint overhead per restart and per (1 + log2 g); minutes in Chronus, read as
seconds here (docs/policies/chronus.md#parameters). Written as one sum because upstream adds
them before multiplying."""
ESTIMATE_MARGIN = 1.1
MIP_TIME_LIMIT = 5.0
MAX_MIP_ITEMS = 1200 * LEASE // 60
"""Items beyond this many are kept out of the MIP with their cached plans (upstream
MAX_SEARCH_JOB scaled by the lease length)."""
HUGE_DEMAND = 1000
"""Upstream RESOURCE_LIMIT: items asking for this many GPUs always keep their cached plan."""
NEVER = 2**63 - 1
"""Upstream's sys.maxsize, the initial urgency of a job that has not been through a pass."""

# queue classes, upstream `queue_priority` values (their order is used in sort keys)
LOWEST = -1
ACCEPTED = 0
UNACCEPTED = 1


def gpu_bin(gpus: int) -> int:
    """GPUs a job reserves per lease: 3-4 -> 4, 5-7 -> 8, anything else unchanged."""
    if gpus in (3, 4):
        return 4
    if 5 <= gpus <= 7:
        return 8
    return gpus


def estimate_duration(duration: int, gpus: int) -> int:
    """Chronus' padded runtime estimate used for its lease count
    (docs/policies/chronus.md#parameters)."""
    coef = 1 + (1 + math.log2(1.0 * gpus)) * RESTART_COST / LEASE
    return int(duration * coef * ESTIMATE_MARGIN)


def chronus_relative_deadline(job: TraceJob) -> int:
    """The converter's `expect_time_list`: trace ddl - submit_time, best-effort jobs included.

    quirk (docs/policies/chronus.md#conversion): the converter drops the best-effort flag, so
    Chronus gives best-effort jobs the deadline written in the trace (kept by the loader as
    `raw_deadline`).
    """
    if not job.best_effort:
        return job.deadline - job.submit_time
    raw = job.raw_deadline
    if raw is None:
        raise ConfigError(
            f"job {job.job_id}: Chronus reads the trace's ddl column of best-effort jobs too, "
            "but this job was built without one (TraceJob.raw_deadline)"
        )
    return raw - job.submit_time


@dataclass(slots=True, eq=False)
class _Job:
    trace: TraceJob
    gpus: int
    demand: int
    duration: int
    submit: int
    rel_deadline: int
    """The converter's deadline (relative); lease horizons are always computed from it."""
    speedup: float
    """tput(g) / tput(1), this job's share of `ce`."""
    expect: int = 0
    """Relative deadline used for the verdict; tightened to a lease boundary on acceptance."""
    tier: int = ACCEPTED
    estimate: int = 0
    leases_left: int = 0
    plan: Plan | None = None
    needs_plan: bool = True
    holds_lease: bool = False
    forced_first: bool = False
    """Upstream `fake_force_guarantee`: overran its estimate, runs first among the others."""
    progress: float = 0.0
    executed: int = 0
    last_check: float = 0.0
    urgency: float = NEVER
    resumes: int = 0
    measured_cost: float = 0.0
    """On a testbed: the job's last measured restart in upstream's unit (whole seconds / 60),
    0 once a re-placing round left it where it was (upstream's `job['overhead']`)."""
    preempts: int = 0
    start: float | None = None
    end: float | None = None
    guaranteed: bool = False

    @property
    def idx(self) -> int:
        return self.trace.idx

    def deadline_lease(self) -> int:
        return (self.submit + self.rel_deadline) // LEASE

    def credit(self, now: float) -> None:
        delta = int(now - self.last_check)
        self.executed = int(self.executed + delta)
        self.progress += delta * 1.0
        self.last_check = now


@dataclass
class _Stats:
    leases_planned: int = 0
    greedy_leases: int = 0
    mip_solves: int = 0
    mip_fallbacks: int = 0
    mip_time_limit_incumbent: int = 0
    mip_seconds: float = 0.0
    max_binaries: int = 0
    max_solved_vars: int = 0
    greedy_unplaced: int = 0
    admission_mip_solves: int = 0
    fallback_reasons: dict[str, int] = field(default_factory=dict)


class _Chronus:
    """One run. Method names follow upstream's phases; list orders mirror upstream's lists."""

    def __init__(
        self,
        trace: list[TraceJob],
        cluster: ClusterSpec,
        profiles: ThroughputProfiles,
        interval: int,
        mode: SolverMode,
        engine: Engine,
    ) -> None:
        if interval <= 0:
            raise ConfigError(f"Chronus check interval must be positive, got {interval}")
        self.engine = engine
        """Chronus keeps its own fixed-step clock from 0 (docs/policies/chronus.md#loop); the
        engine keeps the round samples, the progress and the outcome."""
        self.interval = interval
        self.mode = mode
        self.capacity = cluster.num_gpus
        self.arrivals: list[_Job] = []
        for tj in submission_order(trace):
            if tj.num_gpu > self.capacity:
                # upstream would wait for it forever
                raise ConfigError(
                    f"job {tj.job_id} asks for {tj.num_gpu} GPUs, the cluster has {self.capacity}"
                )
            gain = profiles.tput(tj.model, tj.batch_size, tj.num_gpu) / profiles.tput(
                tj.model, tj.batch_size, 1
            )
            self.arrivals.append(
                _Job(
                    trace=tj,
                    gpus=tj.num_gpu,
                    demand=gpu_bin(tj.num_gpu),
                    duration=tj.duration,
                    submit=tj.submit_time,
                    rel_deadline=chronus_relative_deadline(tj),
                    speedup=gain,
                )
            )
        self.next_arrival = 0
        self.pending: list[_Job] = []
        self.running: list[_Job] = []
        self.finished: list[_Job] = []
        self.lease_index = 0
        self.unaccepted_seen = 0
        self.stats = _Stats()
        self.gpu_map = engine.options.record_gpu_map
        self.last_running: dict[int, int] = {}
        """Job -> GPUs of the previous step (a changed step re-places jobs on a testbed)."""

    # ---- helpers -------------------------------------------------------------------------
    def used_gpus(self) -> int:
        return sum(j.gpus for j in self.running)

    def horizon(self, job: _Job) -> int:
        return job.deadline_lease() - self.lease_index

    def planned_jobs(self) -> list[_Job]:
        """Accepted jobs that take part in lease planning, in upstream's pending+running order."""
        return [
            j
            for j in self.pending + self.running
            if j.tier == ACCEPTED and j.needs_plan and j.leases_left > 0
        ]

    def item(self, job: _Job) -> LeaseItem:
        return LeaseItem(job.demand, job.leases_left, self.horizon(job), job.idx)

    def reserved_capacity(self, jobs: list[_Job]) -> IntArray:
        """Whole cluster minus the cached plans, over the longest horizon of `jobs`.

        quirk: cached plans reserve the job's real GPU count, fresh items its bin
        (docs/policies/chronus.md#leases).
        """
        if not jobs:
            return np.zeros(0, dtype=np.int64)
        length = max(self.horizon(j) for j in jobs)
        free = np.full(max(length, 0), self.capacity, dtype=np.int64)
        for job in jobs:
            if job.plan is None:
                continue
            if len(job.plan) != self.horizon(job):
                raise SimulationError(
                    f"job {job.trace.job_id}: cached lease plan of length {len(job.plan)} "
                    f"does not match its horizon {self.horizon(job)}"
                )
            free[: len(job.plan)] -= job.plan.astype(np.int64) * job.gpus
        if len(free) and int(free.min()) < 0:
            raise SimulationError("cached lease plans overbook the cluster")
        return free

    def start_job(self, job: _Job, now: float) -> None:
        if job.start is None:
            job.start = now

    # ---- 1. progress and completions -------------------------------------------------------
    def flush_running(self, now: int) -> None:
        done: list[_Job] = []
        for job in self.running:
            elapsed = int(now - job.last_check)
            # upstream's testbed mode multiplies the last measured cost instead of the constant
            cost = job.measured_cost if self.engine.executor.measured else RESTART_COST
            overhead = job.resumes * cost * (1 + math.log2(job.gpus))
            if elapsed + job.progress >= job.duration + overhead:
                job.end = job.last_check + job.duration - job.progress + overhead
                job.credit(job.end)
                done.append(job)
            elif elapsed + job.executed >= job.estimate and (
                now % LEASE == 0 or not job.holds_lease
            ):
                # overran its estimate: loses the guarantee, runs first among the rest
                job.tier = UNACCEPTED
                job.plan = None
                job.forced_first = True
                job.needs_plan = False
                job.credit(now)
            else:
                job.credit(now)
        for job in done:
            self.running.remove(job)
            self.finished.append(job)

    # ---- 2. lease re-planning ----------------------------------------------------------------
    def replan(self, now: int) -> None:
        maximize_now = self.unaccepted_seen == 0
        was_running = {j.idx for j in self.running}
        for job in self.running:
            job.holds_lease = False
            job.last_check = now
            if job.tier == ACCEPTED:
                need = math.ceil((job.estimate - job.progress) / LEASE)
                if need < job.leases_left:
                    drop = job.leases_left - need
                    job.leases_left = need
                    if job.plan is not None:
                        ones = np.flatnonzero(job.plan)[:drop]
                        job.plan[ones] = 0
            self.pending.append(job)
        self.running.clear()

        chosen: list[_Job] = []
        items = self.planned_jobs()
        if items:
            self.stats.leases_planned += 1
            picked = None
            if self.mode == "milp":
                picked = self.plan_with_mip(items, maximize_now)
                if picked is None:
                    self.stats.mip_fallbacks += 1
            if picked is None:
                self.stats.greedy_leases += 1
                picked = self.plan_greedily(items)
            chosen = picked
        # with no items nothing is planned: upstream's list of MIP outsiders is empty then

        for job in chosen:
            self.start_job(job, now)
            job.holds_lease = True
            job.leases_left -= 1
            self.running.append(job)
            self.pending.remove(job)
        self.lease_index += 1
        for job in self.running:
            if job.idx not in was_running:
                job.resumes += 1
        for job in self.pending:
            if job.idx in was_running:
                job.preempts += 1
        self.unaccepted_seen = sum(1 for j in self.pending + self.running if j.tier == UNACCEPTED)

    def plan_greedily(self, items: list[_Job]) -> list[_Job]:
        """Upstream's fallback: keep cached plans, pack the rest latest-first, run plan[0]."""
        base = self.reserved_capacity(items)
        fresh = [j for j in items if j.plan is None]
        plans = select_latest_first([self.item(j) for j in fresh], base, self.capacity)
        for job, plan in zip(fresh, plans, strict=True):
            if plan is not None:
                job.plan = plan
            else:
                # upstream stops in pdb here (never seen); the job loses its guarantee below
                self.stats.greedy_unplaced += 1
        chosen: list[_Job] = []
        for job in self.pending + self.running:
            if job.tier != ACCEPTED:
                continue
            if job.plan is None:
                job.tier = UNACCEPTED
                continue
            if len(job.plan) == 0:
                raise SimulationError(
                    f"job {job.trace.job_id}: accepted job with an exhausted lease plan "
                    "(upstream raises IndexError here)"
                )
            if job.plan[0] > 0:
                chosen.append(job)
            job.plan = job.plan[1:]
        return chosen

    def plan_with_mip(self, items: list[_Job], maximize_now: bool) -> list[_Job] | None:
        """The lease MIP over all planned jobs; None when it has no solution (-> greedy)."""
        inside, outside = self.cap_mip_items(items)
        length = max([self.horizon(j) for j in items] + [1])
        capacity = np.full(length, self.capacity, dtype=np.int64)
        for job in outside:
            if job.plan is not None:
                # quirk: outsiders reserve their bin here, their real GPU count elsewhere
                capacity[: len(job.plan)] -= job.plan.astype(np.int64) * job.demand
        self.stats.mip_solves += 1
        result = solve_lease_mip(
            [self.item(j) for j in inside], capacity, maximize_now, MIP_TIME_LIMIT
        )
        self.stats.mip_seconds += result.seconds
        self.stats.max_binaries = max(self.stats.max_binaries, result.binaries)
        self.stats.max_solved_vars = max(self.stats.max_solved_vars, result.solved_vars)
        if result.rows is None:
            reasons = self.stats.fallback_reasons
            reasons[result.status] = reasons.get(result.status, 0) + 1
            return None
        if result.status == "time_limit":
            self.stats.mip_time_limit_incumbent += 1
        chosen: list[_Job] = []
        for job, row in zip(inside, result.rows, strict=True):
            if row[0] > 0:
                chosen.append(job)
            job.plan = row[1:].copy()
        for job in outside:
            if job.tier == ACCEPTED and job.plan is not None:
                if job.plan[0] > 0:
                    chosen.append(job)
                job.plan = job.plan[1:]
        return chosen

    def cap_mip_items(self, items: list[_Job]) -> tuple[list[_Job], list[_Job]]:
        """Keep at most MAX_MIP_ITEMS jobs in the MIP; the others keep their cached plans."""
        surplus = len(items) - MAX_MIP_ITEMS
        if surplus <= 0:
            return items, []
        ranked = sorted(items, key=lambda j: (-j.demand, -self.horizon(j), _id_key(j)))
        inside: list[_Job] = []
        outside: list[_Job] = []
        for job in ranked:
            if job.plan is not None and (surplus > 0 or job.demand >= HUGE_DEMAND):
                outside.append(job)
                surplus -= 1
            else:
                inside.append(job)
        inside.sort(key=_id_key)
        return inside, outside

    # ---- 3. admission ---------------------------------------------------------------------
    def admit(self, now: int) -> None:
        batch: list[_Job] = []
        while (
            self.next_arrival < len(self.arrivals)
            and self.arrivals[self.next_arrival].submit <= now
        ):
            batch.append(self.arrivals[self.next_arrival])
            self.next_arrival += 1
        if not batch:
            return
        planned = self.planned_jobs()
        base = self.reserved_capacity(planned)
        pool = [self.item(j) for j in planned if j.plan is None]
        if not packable(pool, base, self.capacity):
            base, pool = self.repair_admission(planned, base, pool)

        for job in batch:
            job.tier = ACCEPTED
            job.expect = job.rel_deadline
            job.estimate = estimate_duration(job.duration, job.gpus)
            job.leases_left = math.ceil(job.estimate / LEASE)
            new = self.item(job)
            pool.append(new)
            ok = new.leases <= new.horizon and packable(pool, base, self.capacity)
            if not ok:
                ok = self.try_later_deadline(job, new, pool, base)
            if ok:
                job.guaranteed = True
                job.expect = LEASE * (new.horizon + self.lease_index) - job.submit
            else:
                job.tier = UNACCEPTED
                # quirk: the rejected job's item stays in `pool` (with its stretched horizon)
                # for the rest of this batch; upstream trims only a local copy of its lists
            job.last_check = now
            self.pending.append(job)
            if job.tier == UNACCEPTED:
                self.unaccepted_seen += 1

    def try_later_deadline(
        self, job: _Job, new: LeaseItem, pool: list[LeaseItem], base: IntArray
    ) -> bool:
        """Binary-search the shortest packable horizon; accept only if it still meets the
        deadline (never, in practice). Leaves the found horizon on `new`, as upstream does."""
        if new.leases > new.horizon:
            new.horizon = new.leases
        left = new.horizon
        right = max(max(it.horizon for it in pool), len(base)) + job.leases_left + 1
        new.horizon = right
        while left < right:
            new.horizon = left + (right - left) // 2
            if packable(pool, base, self.capacity):
                right = new.horizon
            else:
                left = new.horizon + 1
            new.horizon = right
        stretched = LEASE * (new.horizon + self.lease_index) - job.submit
        return stretched <= int(job.rel_deadline * 1.0)

    def repair_admission(
        self, planned: list[_Job], base: IntArray, pool: list[LeaseItem]
    ) -> tuple[IntArray, list[LeaseItem]]:
        """The accepted set itself does not pack: upstream solves the MIP once, no fallback."""
        if self.mode != "milp":
            raise SimulationError(
                "Chronus admission: the accepted jobs no longer pack (upstream needs Gurobi here)"
            )
        fresh = [j for j in planned if j.plan is None]
        self.stats.admission_mip_solves += 1
        result = solve_lease_mip(pool, base, self.unaccepted_seen == 0, MIP_TIME_LIMIT)
        if result.rows is None:
            raise SimulationError(f"Chronus admission MIP failed ({result.status})")
        for job, row in zip(fresh, result.rows, strict=True):
            job.plan = row.copy()
        planned = self.planned_jobs()
        base = self.reserved_capacity(planned)
        pool = [self.item(j) for j in planned if j.plan is None]
        if not packable(pool, base, self.capacity):
            raise SimulationError("Chronus admission: no feasible plan after the MIP")
        return base, pool

    # ---- 4. pending pass and opportunistic runs --------------------------------------------
    def pending_pass(self, now: int) -> None:
        was_running = {j.idx for j in self.running}
        for job in self.pending:
            job.last_check = now
            if job.tier != LOWEST and (job.expect + job.submit) < (
                now + job.duration - job.progress
            ):
                job.tier = LOWEST
            if job.tier == UNACCEPTED:
                job.urgency = -(job.estimate - job.progress) * job.gpus
            else:
                job.urgency = (
                    -(job.expect + job.submit - now - job.estimate + job.progress) * job.gpus
                )
        self.pending.sort(key=lambda j: (j.tier, j.urgency, j.submit), reverse=True)
        free = self.capacity - self.used_gpus()
        if free > 0:
            self.pending.sort(
                key=lambda j: (int(j.forced_first), min(j.tier, UNACCEPTED), j.urgency, -j.submit),
                reverse=True,
            )
            candidates = [j for j in self.pending if j.tier != ACCEPTED]
            for job in candidates:
                # placement cannot fail once the GPU count fits (module notes)
                if job.gpus > free:
                    continue
                free -= job.gpus
                self.start_job(job, now)
                job.last_check = now
                self.pending.remove(job)
                self.running.append(job)
        for job in self.running:
            if job.idx not in was_running:
                job.resumes += 1

    # ---- 5. resource log --------------------------------------------------------------------
    def log(self, now: int) -> None:
        """One sample per step. quirk: upstream's `_resource.csv` zips these columns with its
        per-admission submit counts, so for check intervals below 240 s it keeps only the first
        (#admission checks) steps; with 240 s (Figures 10, 11) it has every step, as here."""
        ce = 0.0
        for job in self.running:
            ce += job.speedup
        ce /= self.capacity
        self.engine.add_round(
            RoundSample(
                time=now,
                gpus_in_use=self.used_gpus(),
                ce=ce,
                running=len(self.running),
                pending=len(self.pending),
                gpu_map=self.layout() if self.gpu_map else None,
            )
        )
        if self.engine.executor.measured:
            self.measure(now)

    def layout(self) -> tuple[int | None, ...]:
        """The step's GPU map for an executor: placement is not modelled (module notes), so
        the running jobs' GPUs are laid out in turn; a testbed executor picks the slots."""
        gpus: list[int | None] = []
        for job in self.running:
            gpus.extend([job.idx] * job.gpus)
        return tuple(gpus + [None] * (self.capacity - len(gpus)))

    def measure(self, now: int) -> None:
        """A step whose running jobs changed re-places them: each running job's cost becomes
        its measured seconds / 60, 0 where it stayed (upstream's testbed callback, in minutes)."""
        running = {job.idx: job.gpus for job in self.running}
        if running == self.last_running:
            return
        self.last_running = running
        engine = self.engine
        restart = engine.restart_round()
        changes = [AllocationChange(job.idx, job.gpus, False) for job in self.running]
        paid = engine.overheads(now, changes, restart)
        for job in self.running:
            job.measured_cost = math.floor(paid[job.idx]) / 60

    # ---- main loop ------------------------------------------------------------------------
    def run(self) -> None:
        now = 0
        while self.running or self.pending or self.next_arrival < len(self.arrivals):
            before = len(self.finished)
            self.flush_running(now)
            if now % LEASE == 0:
                self.replan(now)
            if now % ADMISSION_PERIOD == 0:
                self.admit(now)
                self.pending_pass(now)
            # quirk: upstream's "filling" step runs only when now is odd - never
            self.log(now)
            for _ in range(len(self.finished) - before):
                self.engine.job_done()
            now += self.interval

    def result(self) -> RunOutcome:
        jobs: list[JobOutcome] = []
        met_count = 0
        by_idx = {j.idx: j for j in self.finished}
        for tj in sorted((j.trace for j in self.arrivals), key=lambda t: t.idx):
            job = by_idx[tj.idx]
            assert job.end is not None
            met = job.end - job.submit <= job.expect
            met_count += int(met)
            jobs.append(
                JobOutcome.of(
                    tj,
                    admitted=True,
                    start_time=job.start,
                    end_time=job.end,
                    gpus_at_end=job.gpus,
                    met_deadline_published=met,
                    preempt=job.preempts,
                )
            )
        s = self.stats
        extra: dict[str, object] = {
            "solver_mode": self.mode,
            "check_interval": self.interval,
            "lease": LEASE,
            "guaranteed_at_arrival": sum(1 for j in self.arrivals if j.guaranteed),
            "leases_planned": s.leases_planned,
            "mip_solves": s.mip_solves,
            "mip_fallbacks": s.mip_fallbacks,
            "greedy_leases": s.greedy_leases,
            "mip_fallback_reasons": dict(s.fallback_reasons),
            "mip_time_limit_with_incumbent": s.mip_time_limit_incumbent,
            "mip_max_binaries": s.max_binaries,
            "mip_max_solved_vars": s.max_solved_vars,
            "admission_mip_solves": s.admission_mip_solves,
            "greedy_unplaced": s.greedy_unplaced,
        }
        self.engine.accepted, self.engine.declined = met_count, len(jobs) - met_count
        return self.engine.outcome(jobs, extra, timings={"mip_seconds": s.mip_seconds})


def _id_key(job: _Job) -> tuple[int, str]:
    """Upstream sorts by job_id, which its loader turned into an int when it is all digits."""
    text = job.trace.job_id
    return (int(text), "") if text.isdigit() else (INT64_MAX, text)


def simulate_chronus(
    trace: list[TraceJob],
    cluster: ClusterSpec,
    profiles: ThroughputProfiles,
    options: SimOptions,
    mode: SolverMode,
    executor: Executor | None = None,
) -> RunOutcome:
    """Run Chronus; its check interval is the figure's scheduling slot (`options.slot`).
    `executor` carries out each step's allocations (a testbed's; nothing is asked of the
    simulated one, Chronus models its own resume cost)."""
    engine = Engine(trace, cluster, options, executor, label=f"chronus-{mode}")
    sim = _Chronus(trace, cluster, profiles, options.slot, mode, engine)
    sim.run()
    return sim.result()


def simulate_greedy(
    trace: list[TraceJob],
    cluster: ClusterSpec,
    profiles: ThroughputProfiles,
    options: SimOptions,
    executor: Executor | None = None,
) -> RunOutcome:
    """Upstream as run without Gurobi: every lease takes the latest-first greedy packing."""
    return simulate_chronus(trace, cluster, profiles, options, "greedy", executor)


def simulate_milp(
    trace: list[TraceJob],
    cluster: ClusterSpec,
    profiles: ThroughputProfiles,
    options: SimOptions,
    executor: Executor | None = None,
) -> RunOutcome:
    """Upstream's intended path: the lease MIP (HiGHS here, Gurobi upstream), 5 s limit."""
    return simulate_chronus(trace, cluster, profiles, options, "milp", executor)
