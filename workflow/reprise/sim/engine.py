"""The engine: clock, events, job progress, restart overheads, round samples, progress, outcome.

A policy keeps its own decisions (who is admitted, how many GPUs, where) and asks the engine for
everything else. Each round's allocations go through an `Executor`, which says what overhead
each job paid: `SimulatedExecutor` models it (docs/engine.md#overheads); a testbed executor
applies the allocations to real trainers and returns measured times. Nothing else differs.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, ClassVar, NamedTuple, Protocol

from tqdm import tqdm

from reprise.data.clusters import ClusterSpec
from reprise.data.profiles import ThroughputProfiles
from reprise.data.traces import TraceJob, submission_order
from reprise.errors import SimulationError
from reprise.records.outcome import JobOutcome, RoundSample, RunOutcome
from reprise.sim.events import EventList
from reprise.sim.options import SimOptions
from reprise.sim.placement import ElasticPlacement, PlacementCache
from reprise.sim.timing import overhead


class AllocationChange(NamedTuple):
    """One job's allocation for the coming interval, as handed to the executor (a tuple: one
    is made per job and round, so it must be cheap)."""

    job: int
    gpus: int
    cached: bool
    """Placed on a GPU range seen since the last restart round (a warm relaunch)."""


class Executor(Protocol):
    """Carries out a round's allocations and reports the overhead each job paid."""

    @property
    def measured(self) -> bool:
        """The overheads are measured on real trainers (a testbed, or a replay of one): then
        every policy pays them, whatever it pays in simulation (docs/engine.md#overheads)."""
        ...

    def apply(
        self, now: float, changes: Sequence[AllocationChange], restart: bool
    ) -> Mapping[int, float]:
        """Seconds of overhead each job in `changes` pays at `now`; `restart` marks a round
        in which every job is relaunched from its checkpoint."""
        ...


class RoundObserver(Protocol):
    """An executor that also wants every round's sample (with its GPU map when
    `SimOptions.record_gpu_map` is set): the testbed's executor places the jobs of the round
    from it, including the jobs a policy does not charge (docs/engine.md#overheads)."""

    def observe_round(self, sample: RoundSample) -> None: ...


class SimulatedExecutor:
    """The modelled overhead of upstream's simulator (docs/engine.md#overheads)."""

    measured = False

    def __init__(self, cluster_gpus: int) -> None:
        self.cluster_gpus = cluster_gpus

    def apply(
        self, now: float, changes: Sequence[AllocationChange], restart: bool
    ) -> dict[int, float]:
        n = self.cluster_gpus
        return {c.job: overhead(c.gpus, restart, c.cached, n) for c in changes}


class ProgressingJob(Protocol):
    """What the engine reads and advances of a policy's job state."""

    @property
    def idx(self) -> int: ...

    gpus: int
    iter_left: float
    end_time: float
    overhead: float
    cached: bool

    def rate(self, gpus: int) -> float: ...

    @property
    def progress_limit(self) -> float:
        """The time after which the job's current plan gives it no more work."""
        ...


class Engine:
    """The clock-side state of one run, shared by every policy that plans in rounds."""

    def __init__(
        self,
        trace: list[TraceJob],
        cluster: ClusterSpec,
        options: SimOptions,
        executor: Executor | None = None,
        merge_completions: bool = True,
        label: str | None = None,
        pays_modelled_overhead: bool = True,
    ) -> None:
        self.n = cluster.num_gpus
        self.slot = options.slot
        self.options = options
        self.executor: Executor = executor or SimulatedExecutor(self.n)
        self.pays = self.executor.measured or pays_modelled_overhead
        """Whether the policy's jobs pay overheads in this run: always when they are measured
        (upstream's testbed mode), else as the policy declares
        (`PolicyRun.pays_modelled_overhead`)."""
        observer = getattr(self.executor, "observe_round", None)
        self.observe: Callable[[RoundSample], None] | None = observer
        """The executor's round hook, if it has one (a testbed executor does)."""
        self.max_overhead = options.max_overhead
        order = submission_order(trace)
        self.events = EventList.from_arrivals(
            ((t.idx, t.submit_time) for t in order), merge_completions
        )
        self.cache = PlacementCache(self.n)
        """GPU ranges used since the last restart round: a job placed on one relaunches warm."""
        self.rounds: list[RoundSample] = []
        self.accepted = 0
        self.declined = 0
        self.schedule_count = 0
        self.bar = tqdm(total=len(trace), desc=label, unit="job", disable=not options.show_progress)

    # ---- progress -----------------------------------------------------------------------------

    def advance(self, jobs: Iterable[ProgressingJob], time_diff: float, now: float) -> None:
        """Progress of every job holding GPUs over the elapsed interval (docs/engine.md#progress).

        A job whose work runs out before its planned end completes in this round at its exact
        end; its completion event moves to `now`.
        """
        events = self.events
        for job in jobs:
            gpus = job.gpus
            if gpus == 0:
                continue
            run: float = time_diff
            limit = job.progress_limit
            if now > limit:
                run -= now - limit
            if run <= 0:
                raise SimulationError(
                    f"job {job.idx}: non-positive run time at {now} (upstream asserts here)"
                )
            run = 0 if run < job.overhead else run - job.overhead
            rate = job.rate(gpus)
            iters = run * rate
            if job.iter_left <= iters and job.end_time > now:
                actual_end = now - time_diff + math.ceil(job.iter_left / rate)
                iters = (job.end_time - now + time_diff) * rate
                events.move_completion(job.idx, job.end_time, now)
                job.end_time = actual_end
            job.iter_left -= iters
            job.overhead = 0

    def job_done(self) -> None:
        self.bar.update(1)

    # ---- overheads ----------------------------------------------------------------------------

    def restart_round(self) -> bool:
        """Every `slot`-th round relaunches jobs (quirk: a length in seconds used as a round
        count, docs/engine.md#overheads); a restart forgets the warm GPU ranges."""
        restart = self.schedule_count > 0 and self.schedule_count % self.slot == 0
        self.schedule_count += 1
        if restart:
            self.cache.clear()
        return restart

    def overheads(
        self, now: float, changes: Sequence[AllocationChange], restart: bool
    ) -> Mapping[int, float]:
        """What each job pays for this round's `changes`, as the executor reports it, capped
        at `options.max_overhead` where one is set (docs/engine.md#overheads)."""
        if not changes:
            return {}
        paid = self.executor.apply(now, changes, restart)
        cap = self.max_overhead
        if cap is None:
            return paid
        return {c.job: min(paid[c.job], cap) for c in changes}

    def charge(self, jobs: Sequence[ProgressingJob], now: float) -> None:
        """Hand this round's allocations of `jobs` to the executor and push the overhead each
        job paid onto its planned end (docs/engine.md#overheads). The round is counted either
        way; where the run does not pay (`pays`), nobody is charged."""
        restart = self.restart_round()
        if not self.pays:
            return
        changes = [AllocationChange(j.idx, j.gpus, j.cached) for j in jobs if j.gpus > 0]
        paid = self.overheads(now, changes, restart)
        for job in jobs:
            if job.gpus > 0:
                job.overhead = paid[job.idx]
                old_end = job.end_time
                job.end_time = old_end + job.overhead
                self.events.move_completion(job.idx, old_end, job.end_time)
            else:
                job.overhead = 0

    # ---- rounds -------------------------------------------------------------------------------

    def record_round(
        self,
        now: float,
        running: Sequence[ProgressingJob],
        pending: int,
        placement: ElasticPlacement,
        gpu_map: tuple[int | None, ...] | None = None,
    ) -> None:
        """The round's sample: GPUs in use and cluster efficiency over the running jobs."""
        ce = 0.0
        in_use = 0
        for job in running:
            gpus = job.gpus
            if gpus == 0:
                continue
            if not placement.is_placed(job.idx):
                raise SimulationError(f"running job {job.idx} holds GPUs but no placement")
            ce += job.rate(gpus) / job.rate(1)
            in_use += gpus
        self.add_round(
            RoundSample(
                time=now,
                gpus_in_use=in_use,
                ce=ce / self.n,
                running=len(running),
                pending=pending,
                gpu_map=gpu_map,
            )
        )

    def add_round(self, sample: RoundSample) -> None:
        """A round sample the policy computed itself (its own efficiency rule); an executor
        with a round hook sees it before the round's overheads are asked for."""
        self.rounds.append(sample)
        if self.observe is not None:
            self.observe(sample)

    def next_round(self, now: float) -> tuple[float, int]:
        """The next round's time (events within a slot coalesced) and the elapsed seconds."""
        next_time = self.events.coalesce(now, self.slot)
        return next_time, int(next_time - now)

    # ---- outcome ------------------------------------------------------------------------------

    def outcome(
        self,
        jobs: list[JobOutcome],
        extra: Mapping[str, Any],
        timings: Mapping[str, float] | None = None,
    ) -> RunOutcome:
        """The run's outcome: the policy's job outcomes and counters beside the engine's
        rounds and accepted/declined counts; `timings` are for benchmarks only."""
        self.bar.close()
        return RunOutcome(
            jobs=jobs,
            rounds=self.rounds,
            accepted=self.accepted,
            declined=self.declined,
            extra=dict(extra),
            timings=dict(timings or {}),
        )


class PolicyRun(ABC):
    """One run of a policy on the engine: the engine and the inputs every policy reads.

    A policy subclasses it, sets up its own state in `prepare`, drives its rounds in `run` and
    builds its outcome in `outcome`; `simulate` is the registry's entry point
    (docs/adding-a-policy.md). `label` names the progress bar; `merge_completions` picks the
    event-coalescing flavour (docs/engine.md#events).
    """

    label: ClassVar[str | None] = None
    merge_completions: ClassVar[bool] = True
    pays_modelled_overhead: ClassVar[bool] = True
    """Whether upstream's simulator charges the policy the modelled overhead (its own rule
    says which jobs); plain EDF and Themis: no. With a measuring executor every policy pays
    what was measured, as upstream's testbed mode charges every policy
    (docs/engine.md#overheads)."""

    def __init__(
        self,
        trace: list[TraceJob],
        cluster: ClusterSpec,
        profiles: ThroughputProfiles,
        options: SimOptions,
        executor: Executor | None = None,
    ) -> None:
        self.engine = Engine(
            trace,
            cluster,
            options,
            executor,
            self.merge_completions,
            self.label,
            self.pays_modelled_overhead,
        )
        self.cluster = cluster
        self.profiles = profiles
        self.options = options
        self.slot = options.slot
        self.n = cluster.num_gpus
        self.prepare(trace)

    @abstractmethod
    def prepare(self, trace: list[TraceJob]) -> None:
        """The policy's own state for `trace`."""

    @abstractmethod
    def run(self) -> None:
        """All rounds, until the policy's end condition."""

    @abstractmethod
    def outcome(self) -> RunOutcome:
        """The run's outcome (usually `self.engine.outcome(...)`)."""

    @classmethod
    def simulate(
        cls,
        trace: list[TraceJob],
        cluster: ClusterSpec,
        profiles: ThroughputProfiles,
        options: SimOptions,
        executor: Executor | None = None,
    ) -> RunOutcome:
        """Run the policy on `trace`; `executor` carries out each round's allocations (the
        simulated one by default)."""
        run = cls(trace, cluster, profiles, options, executor)
        run.run()
        return run.outcome()
