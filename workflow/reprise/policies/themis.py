"""Themis (docs/policies/themis.md): fixed one-slot leases handed out by finish-time fairness.

Each round solves the min-max finish-time-fairness program with ECOS directly
(docs/policies/themis.md#solver).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import _ecos
import numpy as np
import numpy.typing as npt

from reprise.data.clusters import ClusterSpec
from reprise.data.traces import TraceJob, submission_order
from reprise.errors import SimulationError
from reprise.records.outcome import JobOutcome, RoundSample, RunOutcome
from reprise.sim.engine import AllocationChange, PolicyRun
from reprise.sim.placement import ElasticPlacement

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

# ECOS exit codes under which cvxpy still hands back a solution: optimal, optimal but
# inaccurate, iteration limit. Anything else leaves upstream with no x values and it crashes.
_ECOS_USABLE_EXITS = frozenset({0, 10, -1})


@dataclass(slots=True, eq=False)
class _Job:
    """Mutable state of one submitted job."""

    spec: TraceJob
    tput: float
    """Iterations per second at the trace's GPU count (the only size Themis runs a job at)."""
    speedup: float
    """tput / tput at 1 GPU: the job's contribution to `ce`."""
    iters_left: float
    time_left: int
    """Quirk: a second, duration-based clock; the job ends when either clock runs out."""
    iso_elapsed: float = 0.0
    """C_i: isolated-time equivalent of the work done so far (docs/policies/themis.md)."""
    last_iters: float | None = None
    last_iso: float = 1.0
    share: float = 0.0
    end_time: int | None = None


@dataclass(slots=True, eq=False)
class _Event:
    time: int
    arrivals: list[_Job] = field(default_factory=list)
    completions: list[_Job] = field(default_factory=list)


class _ConicModel:
    """The exact second-order-cone program cvxpy 1.9 hands to ECOS for the round problem.

    Variables z = (t, x_1..x_n, s_1..s_n); minimise t subject to
      t >= elapsed_i / D_i + (I_i / D_i) s_i        (rows 0..n-1, one per fraction of the max)
      x_i >= 0, x_i <= 1, sum_i g_i x_i <= N        (rows n..3n)
      s_i * (tput_i x_i) >= 1                       (one 3-dim SOC per job, inv_pos epigraph)
    Row/column order, coefficient arithmetic (I * (1/D), not I / D) and sparsity pattern are
    bit-identical to cvxpy's output (checked against cvxpy's `get_problem_data`), so ECOS returns
    the very x values upstream saw; the priority order depends on their last digits.
    """

    def __init__(self, n: int, num_gpus: int) -> None:
        rows = np.arange(n, dtype=np.int64)
        cone = 3 * n + 1 + 3 * rows
        self.n = n
        self.shape = (6 * n + 1, 2 * n + 1)
        col_x = np.stack([n + rows, 2 * n + rows, np.full(n, 3 * n), cone, cone + 1], axis=1)
        col_s = np.stack([rows, cone, cone + 1], axis=1)
        self.indices: IntArray = np.concatenate([rows, col_x.ravel(), col_s.ravel()])
        self.indptr: IntArray = np.concatenate(
            [
                np.array([0, n], dtype=np.int64),
                n + 5 * np.arange(1, n + 1, dtype=np.int64),
                6 * n + 3 * np.arange(1, n + 1, dtype=np.int64),
            ]
        )
        self.data: FloatArray = np.empty(9 * n)
        self.data[:n] = -1.0
        x_part = self.data[n : 6 * n].reshape(n, 5)
        x_part[:, 0] = -1.0
        x_part[:, 1] = 1.0
        self._x_part = x_part
        s_part = self.data[6 * n :].reshape(n, 3)
        s_part[:, 1] = -1.0
        s_part[:, 2] = 1.0
        self._s_part = s_part
        self.h: FloatArray = np.zeros(6 * n + 1)
        self.h[2 * n : 3 * n] = 1.0
        self.h[3 * n] = float(num_gpus)
        self.h[3 * n + 3 :: 3] = 2.0
        self.c: FloatArray = np.zeros(2 * n + 1)
        self.c[0] = 1.0
        self.dims = {"l": 3 * n + 1, "q": [3] * n, "e": 0}

    def solve(
        self,
        gpus: FloatArray,
        tput: FloatArray,
        iters: FloatArray,
        elapsed: FloatArray,
        denom: FloatArray,
    ) -> FloatArray:
        n = self.n
        inv = 1.0 / denom
        self._x_part[:, 2] = gpus
        self._x_part[:, 3] = -tput
        self._x_part[:, 4] = -tput
        self._s_part[:, 0] = iters * inv
        self.h[:n] = -(elapsed * inv)
        # the extension behind ecos.solve, called with the CSC arrays that wrapper would unpack
        solution = _ecos.csolve(
            (self.shape[0], self.shape[1], 0),
            self.c,
            self.data,
            self.indices,
            self.indptr,
            self.h,
            self.dims,
            verbose=False,
        )
        flag = int(solution["info"]["exitFlag"])
        if flag not in _ECOS_USABLE_EXITS:
            raise SimulationError(
                f"ECOS found no usable Themis allocation for {n} jobs (exit flag {flag}); "
                "upstream crashes here"
            )
        shares: FloatArray = np.asarray(solution["x"][1 : 1 + n], dtype=np.float64)
        return shares


@dataclass(slots=True, eq=False)
class _RoundProblem:
    """One round's program data, with the runnable list in the order it had when posed."""

    jobs: list[_Job]
    gpus: FloatArray
    tput: FloatArray
    iters: FloatArray
    elapsed: FloatArray
    denom: FloatArray

    def all_fit(self, num_gpus: int) -> bool:
        return float(self.gpus.sum()) <= num_gpus


def _round_problem(runnable: list[_Job], num_gpus: int, t_event: int) -> _RoundProblem | None:
    """Update C_i and pose the round's program; None when a single job makes x irrelevant."""
    n = len(runnable)
    share_each = -(-num_gpus // n)
    gpus = np.array([j.spec.num_gpu for j in runnable], dtype=np.float64)
    # quirk: upstream's "isolated throughput" helper returns this dimensionless share
    iso = np.minimum(share_each / gpus, 1.0)
    iters = np.empty(n)
    for i, job in enumerate(runnable):
        if job.last_iters is not None:
            job.iso_elapsed += (job.last_iters - job.iters_left) / job.last_iso
        job.last_iters = job.iters_left
        job.last_iso = float(iso[i])
        iters[i] = job.iters_left
    if n == 1:
        # the lone job runs whatever x is, and a one-element sort changes nothing
        return None
    denom = np.array([j.iso_elapsed for j in runnable]) + iters / iso
    # quirk: the elapsed term uses the time of the last processed event, not `now`
    elapsed = np.array([float(t_event - j.spec.submit_time) for j in runnable])
    tput = np.array([j.tput for j in runnable])
    return _RoundProblem(list(runnable), gpus, tput, iters, elapsed, denom)


class _Solver:
    """ECOS on the round program, one reusable model per job count."""

    def __init__(self, num_gpus: int) -> None:
        self._num_gpus = num_gpus
        self._models: dict[int, _ConicModel] = {}
        self.calls = 0

    def shares(self, problem: _RoundProblem) -> FloatArray:
        n = len(problem.jobs)
        model = self._models.get(n)
        if model is None:
            model = self._models[n] = _ConicModel(n, self._num_gpus)
        self.calls += 1
        return model.solve(
            problem.gpus, problem.tput, problem.iters, problem.elapsed, problem.denom
        )


def _sort_by_shares(jobs: list[_Job], shares: FloatArray) -> None:
    """Upstream's priority sort in place: x descending, stable, so list order breaks exact ties."""
    for job, x in zip(jobs, shares.tolist(), strict=True):
        job.share = x
    jobs.sort(key=_share, reverse=True)


def _has_ties(shares: FloatArray) -> bool:
    ordered = np.sort(shares)
    return bool((ordered[1:] == ordered[:-1]).any())


def _carry_order(before: list[_Job], now: list[_Job]) -> list[_Job]:
    """`now`'s jobs in the order they would have after `before`: removals keep the relative
    order of the rest and arrivals are appended at the end, in `now`'s order."""
    present = {id(j) for j in now}
    known = {id(j) for j in before}
    return [j for j in before if id(j) in present] + [j for j in now if id(j) not in known]


class _PriorityOrder:
    """Keeps the runnable list in upstream's priority order while skipping solves that cannot
    change any output.

    In a round where every runnable job fits, all of them run, whatever x is: the order then
    only matters through the stable sort, as the tie-break of a later round whose x values tie
    exactly, and through the GPU map and the float sum behind `ce`. Such a round is deferred
    (its program is kept, unsolved) when the layout is memoised, no GPU map is recorded and
    `ce` adds the same values in the same order whatever the order among equal-size jobs.
    A later round with no tie in x sorts into the same order whatever came before, so the
    deferred rounds are dropped unsolved; a round whose x values tie first replays them in
    turn (solve, carry the order, sort) to rebuild the order upstream sorts from.
    Not bit-exact in one respect: the round after a deferred run poses its program with the
    rows in the unsorted order, which can move ECOS's last digits. Measured on Figures 8(a)
    and 10 (identical to solving every round) and on 600 random traces full of identical
    jobs: only jobs with identical rows ever traded places (tests/test_themis.py).
    """

    def __init__(self, solver: _Solver, num_gpus: int, can_defer: bool) -> None:
        self._solver = solver
        self._num_gpus = num_gpus
        self._can_defer = can_defer
        self._deferred: list[_RoundProblem] = []
        self.deferred_rounds = 0
        self.replayed_rounds = 0

    def forget(self) -> None:
        """The list's order is now known to be upstream's (empty or one job)."""
        self._deferred.clear()

    def order(self, runnable: list[_Job], problem: _RoundProblem) -> None:
        """Bring `runnable` (the list `problem` was posed on) into this round's priority order."""
        if self._can_defer and problem.all_fit(self._num_gpus) and _same_ce_terms(runnable):
            self._deferred.append(problem)
            self.deferred_rounds += 1
            return
        shares = self._solver.shares(problem)
        if self._deferred and _has_ties(shares):
            runnable[:] = self._replay(runnable)
            shares = _aligned(shares, problem.jobs, runnable)
        self._deferred.clear()
        _sort_by_shares(runnable, shares)

    def _replay(self, runnable: list[_Job]) -> list[_Job]:
        # the first deferred round was posed on a list in upstream's order: carrying from an
        # empty order gives exactly that list
        order: list[_Job] = []
        for problem in self._deferred:
            order = _carry_order(order, problem.jobs)
            _sort_by_shares(order, _aligned(self._solver.shares(problem), problem.jobs, order))
            self.replayed_rounds += 1
        return _carry_order(order, runnable)


def _aligned(shares: FloatArray, posed: list[_Job], order: list[_Job]) -> FloatArray:
    """`shares` (one per job of `posed`) rearranged to follow `order`."""
    position = {id(j): i for i, j in enumerate(posed)}
    return shares[[position[id(j)] for j in order]]


def _same_ce_terms(runnable: list[_Job]) -> bool:
    """Whether jobs of equal size all add the same `ce` term (then their order cannot change
    the float sum, since placed jobs are summed in size order)."""
    term: dict[int, float] = {}
    for job in runnable:
        seen = term.setdefault(job.spec.num_gpu, job.speedup)
        if seen != job.speedup:
            return False
    return True


def _arrival_events(jobs: list[_Job]) -> list[_Event]:
    events: dict[int, _Event] = {}
    for job in jobs:
        t = job.spec.submit_time
        if t not in events:
            events[t] = _Event(t)
        events[t].arrivals.append(job)
    return sorted(events.values(), key=lambda e: e.time)


def _coalesce(events: list[_Event], now: int, slot: int) -> None:
    """Pull events within one slot of `now` to now + slot, merging them
    (docs/policies/themis.md)."""
    if not events:
        return
    nearest = events[0].time
    while int(nearest - now) <= slot and len(events) > 1:
        events[0].time = now + slot
        if events[1].time - now > slot:
            nearest = events[0].time
            break
        nearest = events[1].time
        events[0].arrivals.extend(events[1].arrivals)
        events[0].completions.extend(events[1].completions)
        del events[1]
    if int(nearest - now) < slot:
        # Themis-only: a lone near event snaps to the round grid too
        events[0].time = now + slot


class _Placer:
    """Places each round's chosen jobs with the `elastic` scheme and yields the GPU map.

    Upstream releases every job and re-places the chosen ones each round. Releasing everything
    empties every node set; on a one-switch cluster the free-node list is then back in node order
    whatever the release order, so the layout depends only on the sequence of job sizes and is
    memoised per size sequence (jobs are mere labels). Several switches: the literal path.
    """

    def __init__(self, cluster: ClusterSpec, want_map: bool) -> None:
        self._cluster = cluster
        self._want_map = want_map
        self._memo = cluster.num_switch == 1
        self._templates: dict[tuple[int, ...], tuple[int | None, ...]] = {}
        self._live = ElasticPlacement(cluster)

    @property
    def memoised(self) -> bool:
        """Whether layouts depend on the sequence of job sizes alone."""
        return self._memo

    def release(self, order: list[int]) -> None:
        """Round start: release last round's jobs in runnable-list order (literal path only)."""
        if not self._memo:
            self._live.release_all(order)

    def place(self, now: int, jobs: list[_Job]) -> tuple[int | None, ...] | None:
        """Place `jobs` in order; the GPU map (job idx per GPU) if it was asked for."""
        if self._memo:
            sizes = tuple(j.spec.num_gpu for j in jobs)
            template = self._templates.get(sizes)
            if template is None:
                fresh = ElasticPlacement(self._cluster)
                for pos, gpus in enumerate(sizes):
                    self._check(fresh.place(pos, gpus), now, jobs[pos])
                template = self._templates[sizes] = fresh.gpu_map()
            if not self._want_map:
                return None
            return tuple(None if pos is None else jobs[pos].spec.idx for pos in template)
        for job in jobs:
            self._check(self._live.place(job.spec.idx, job.spec.num_gpu), now, job)
        return self._live.gpu_map() if self._want_map else None

    @staticmethod
    def _check(ok: bool, now: int, job: _Job) -> None:
        if not ok:
            raise SimulationError(
                f"t={now}: no node set can take job {job.spec.idx} ({job.spec.num_gpu} GPUs); "
                "upstream asserts here"
            )


class Themis(PolicyRun):
    """One run: Themis' own event list (one round per slot, docs/policies/themis.md); the
    engine keeps the round samples, the progress and the outcome. Each method is one phase.
    In simulation Themis pays no overhead and the executor is never asked; on a testbed its
    jobs pay the measured restarts of every round that changed the running set
    (docs/engine.md#overheads)."""

    label = "themis"
    pays_modelled_overhead = False

    def prepare(self, trace: list[TraceJob]) -> None:
        num_gpus, profiles, options = self.n, self.profiles, self.options
        self.states: dict[int, _Job] = {}
        for spec in submission_order(trace):
            tput = profiles.tput(spec.model, spec.batch_size, spec.num_gpu)
            if spec.num_gpu > num_gpus:
                raise SimulationError(
                    f"job {spec.idx} asks for {spec.num_gpu} GPUs but the cluster has {num_gpus}"
                )
            self.states[spec.idx] = _Job(
                spec=spec,
                tput=tput,
                speedup=tput / profiles.tput(spec.model, spec.batch_size, 1),
                iters_left=float(spec.iterations),
                time_left=spec.duration,
            )
        self.events = _arrival_events(list(self.states.values()))
        self.placer = _Placer(self.cluster, options.record_gpu_map)
        self.solver = _Solver(num_gpus)
        # deferring needs layouts that depend on job sizes only, and no GPU map to label
        self.priority = _PriorityOrder(
            self.solver, num_gpus, self.placer.memoised and not options.record_gpu_map
        )
        self.runnable: list[_Job] = []
        self.placed: list[_Job] = []
        self.trace = trace
        self.accepted = self.declined = 0
        self.t_event = self.events[0].time
        self.last_chosen: frozenset[int] = frozenset()
        """The jobs that ran the previous lease (upstream's `old_running_jobs`)."""

    def run(self) -> None:
        now = self.events[0].time
        while self.events or self.runnable:
            self.release()
            self.take_event(now)
            chosen, free = self.choose()
            self.placed = sorted(chosen, key=_gpus, reverse=True)
            self.sample(now, free)
            _coalesce(self.events, now, self.slot)
            self.execute(now, chosen)
            now += self.slot

    def release(self) -> None:
        placed = self.placed
        if placed and not self.placer.memoised:
            held = {id(j) for j in placed}
            self.placer.release([j.spec.idx for j in self.runnable if id(j) in held])

    def take_event(self, now: int) -> None:
        """Completions and arrivals of the event at `now`, if there is one."""
        events = self.events
        if not events or events[0].time != now:
            return
        event = events.pop(0)
        self.t_event = event.time
        for job in event.completions:
            assert job.end_time is not None
            if job.end_time > job.spec.deadline:
                self.declined += 1  # quirk: `accepted` was never incremented, so no decrement
            elif not job.spec.best_effort:
                self.accepted += 1
            self.runnable.remove(job)
            self.engine.job_done()
        self.runnable.extend(event.arrivals)

    def choose(self) -> tuple[list[_Job], int]:
        """This round's jobs in list order, and the GPUs left free."""
        runnable = self.runnable
        chosen: list[_Job] = []
        free = self.n
        if not runnable:
            self.priority.forget()
            return chosen, free
        problem = _round_problem(runnable, self.n, self.t_event)
        if problem is None:
            self.priority.forget()
        else:
            # priority = x * 1e9 with x as tie-break, i.e. plain x; stable, so list order
            # (carried over between rounds) breaks exact ties
            self.priority.order(runnable, problem)
        for job in runnable:
            if free <= 0:
                break
            if job.spec.num_gpu <= free:
                chosen.append(job)
                free -= job.spec.num_gpu
        return chosen, free

    def sample(self, now: int, free: int) -> None:
        placed = self.placed
        gpu_map = self.placer.place(now, placed)
        ce = 0.0
        for job in placed:
            ce += job.speedup
        self.engine.add_round(
            RoundSample(
                time=now,
                gpus_in_use=self.n - free,
                ce=ce / self.n,
                running=len(placed),
                pending=len(self.runnable) - len(placed),
                gpu_map=gpu_map,
            )
        )

    def execute(self, now: int, chosen: list[_Job]) -> None:
        """The chosen jobs run the whole lease; those that end within it complete at its end."""
        slot = self.slot
        lease_end = now + slot
        paid = self.overheads(now, chosen)
        finishing: list[_Job] = []
        for job in chosen:
            # no work while relaunching: the overhead comes off the lease and pushes the end
            spent = paid.get(job.spec.idx, 0)
            run = slot - spent
            end = now + spent + job.time_left
            job.time_left = job.time_left - run if job.time_left > run else 0
            job.iters_left -= run * job.tput
            if job.iters_left <= 0:
                job.time_left = 0
                end = lease_end
            if end <= lease_end:
                job.end_time = end
                finishing.append(job)
        events = self.events
        if events and events[0].time == lease_end:
            events[0].completions.extend(finishing)
        elif finishing:
            events.append(_Event(lease_end, completions=finishing))
            events.sort(key=lambda e: e.time)

    def overheads(self, now: int, chosen: list[_Job]) -> dict[int, int]:
        """What each chosen job pays at the start of this lease, in whole seconds. Nothing in
        simulation (upstream never computes it for Themis); where the overheads are measured,
        the executor's seconds for a round whose running set changed (upstream's
        `reschedule_flag`; only such a round re-places jobs and counts towards a restart)."""
        engine = self.engine
        if not engine.pays:
            return {}  # the simulator's hot loop: nothing to track
        chosen_ids = frozenset(job.spec.idx for job in chosen)
        changed = chosen_ids != self.last_chosen
        self.last_chosen = chosen_ids
        if not changed:
            return {}
        restart = engine.restart_round()
        changes = [AllocationChange(j.spec.idx, j.spec.num_gpu, False) for j in chosen]
        return {job: math.floor(s) for job, s in engine.overheads(now, changes, restart).items()}

    def outcome(self) -> RunOutcome:
        """Every job is admitted and eventually completes."""
        engine = self.engine
        engine.accepted, engine.declined = self.accepted, self.declined
        return engine.outcome(
            self.job_outcomes(),
            {
                "solver_calls": self.solver.calls,
                "deferred_rounds": self.priority.deferred_rounds,
                "replayed_rounds": self.priority.replayed_rounds,
                "rounds": len(engine.rounds),
            },
        )

    def job_outcomes(self) -> list[JobOutcome]:
        outcomes: list[JobOutcome] = []
        for spec in self.trace:
            job = self.states[spec.idx]
            slo = not spec.best_effort
            outcomes.append(
                JobOutcome.of(
                    spec,
                    admitted=True,
                    # quirk: upstream Themis never records a start (its job.csv prints
                    # sys.maxsize); the run record leaves the cell empty instead
                    start_time=None,
                    end_time=job.end_time,
                    gpus_at_end=spec.num_gpu,
                    met_deadline_published=(
                        None if not slo or job.end_time is None else job.end_time <= spec.deadline
                    ),
                )
            )
        return outcomes


def _share(job: _Job) -> float:
    return job.share


def _gpus(job: _Job) -> int:
    return job.spec.num_gpu


simulate = Themis.simulate
"""Run Themis over a trace (the registry's entry point)."""
