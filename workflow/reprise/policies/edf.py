"""EDF and EDF + admission control: greedy elastic earliest-deadline-first.

See docs/policies/edf.md.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from bisect import bisect_left, bisect_right, insort
from collections.abc import Iterable
from dataclasses import dataclass, field
from operator import attrgetter
from typing import ClassVar

from reprise.data.traces import TraceJob
from reprise.errors import SimulationError
from reprise.records.outcome import RunOutcome
from reprise.sim.engine import PolicyRun
from reprise.sim.events import Event
from reprise.sim.jobstate import planned_job_outcomes
from reprise.sim.limits import max_gpu_from_profile
from reprise.sim.placement import ElasticPlacement, cache_flags
from reprise.sim.timeline import Timeline, merge_runs
from reprise.sim.timing import align


@dataclass(slots=True, eq=False)
class EdfJob:
    """Mutable state of one job under EDF; `plan_*` hold the latest planner output."""

    trace: TraceJob
    base: int
    """GPUs EDF gives whenever it can: min(max_gpu, cluster size)."""
    columns: tuple[int, ...]
    rates: dict[int, float]
    iter_left: float
    max_rate: float = 0.0
    """Its fastest throughput at any GPU count: bounds how soon a starved job can end."""
    gpus: int = 0
    end_time: float = 0
    """Planned end (plus pushed-back overheads for EDF+AC); upstream's `end_time`."""
    start_time: float | None = None
    overhead: float = 0.0
    cached: bool = False
    running: bool = False
    plan_gpus: int = 0
    plan_end: float = 0
    admitted: bool = False
    done: bool = False
    met: bool | None = None
    order_key: tuple[int, int] = (0, 0)
    """(deadline, admission number) under plain EDF: its place in the planning order."""
    _shares: list[int] = field(default_factory=list, repr=False)

    @property
    def idx(self) -> int:
        return self.trace.idx

    @property
    def deadline(self) -> int:
        return self.trace.deadline

    @property
    def progress_limit(self) -> float:
        return self.end_time

    def rate(self, gpus: int) -> float:
        value = self.rates.get(gpus)
        if value is None:
            raise SimulationError(f"job {self.idx}: no throughput cached for {gpus} GPUs")
        return value

    def shares(self, num_gpus: int) -> list[int]:
        """`edf_plan`'s partial share for each free count 0..num_gpus (0 when nothing fits)."""
        table = self._shares
        if len(table) <= num_gpus:
            table = _share_table(self.columns, num_gpus)
            self._shares = table
        return table


_SHARE_TABLES: dict[tuple[tuple[int, ...], int], list[int]] = {}


def _share_table(columns: tuple[int, ...], num_gpus: int) -> list[int]:
    """For free = 0..num_gpus: the last column before the first one above `free` (edf_plan's
    scan); shared by every job with the same columns."""
    key = (columns, num_gpus)
    table = _SHARE_TABLES.get(key)
    if table is None:
        table = [0]
        for free in range(1, num_gpus + 1):
            g = 0
            for c in columns:
                if c > free:
                    break
                g = c
            table.append(g)
        _SHARE_TABLES[key] = table
    return table


def edf_plan(
    job: EdfJob, t0: float, timeline: Timeline, num_gpus: int, slot: int
) -> tuple[int, float, bool, Timeline]:
    """Plan one job greedily on the free-GPU timeline (docs/policies/edf.md#edf).

    Returns (GPUs at t0, planned end, deadline met, committed timeline). Quirks kept from upstream:
    the release breakpoint inserted after the job is the slot-ALIGNED end (and overwrites any value
    already at that key) while the unaligned end is what is tested and returned; past the last key
    the whole cluster is assumed free.
    """
    if t0 not in timeline:
        raise SimulationError(f"planning time {t0} is not a key of the free-GPU timeline")
    base = job.base
    deadline = job.deadline
    iters = job.iter_left
    new = dict(timeline)
    seg_start = t0
    free = timeline[t0]
    alloc_now = 0
    ok = True
    for k in timeline:
        if k <= seg_start:
            free = timeline[k]
            if k < seg_start:  # keys before the planning time are dropped
                del new[k]
            continue
        span = k - seg_start
        if free >= base:
            g = base
        elif free >= 1:
            g = 0
            for c in job.columns:
                if c > free:
                    break
                g = c
        else:
            g = 0
        if seg_start == t0:
            alloc_now = g
        if g > 0:
            rate = job.rate(g)
            end = math.ceil(seg_start + iters / rate)
            if k >= end:
                release_value = num_gpus
                for t in timeline:
                    if seg_start <= t < end:
                        release_value = new[t]
                        new[t] -= g
                        if new[t] < 0:
                            raise SimulationError(f"job {job.idx} overdraws the timeline at {t}")
                # upstream skips this reset in the full-share branch when the job has no work
                # left (end == seg_start); kept for exactness
                if g != base or seg_start != end:
                    new[seg_start] = free - g
                if end not in timeline:
                    new[align(t0, end, slot)] = release_value
                committed = merge_runs(dict(sorted(new.items())))
                return alloc_now, end, ok and end <= deadline, committed
            iters -= span * rate
            new[seg_start] -= g
            if new[seg_start] < 0:
                raise SimulationError(f"job {job.idx} overdraws the timeline at {seg_start}")
        free = new[k]
        seg_start = k
        if seg_start > deadline:
            ok = False
    # past the last breakpoint: assume the whole cluster is free again
    if seg_start == t0:
        alloc_now = base
    end = math.ceil(seg_start + iters / job.rate(base))
    if end > deadline:
        ok = False
    new[seg_start] = num_gpus - base
    new[align(t0, end, slot)] = num_gpus
    return alloc_now, end, ok, merge_runs(dict(sorted(new.items())))


class FreeTimeline:
    """The free-GPU timeline as two parallel lists, edited in place by `edf_plan_inplace`.

    Invariants (those of every timeline `edf_plan` commits when planning starts from
    {now: N}): `times` strictly ascending, `times[0]` the planning time, no two neighbouring
    values equal (compressed).
    """

    __slots__ = ("times", "vals")

    def __init__(self, t0: float, free: int) -> None:
        self.times: list[float] = [t0]
        self.vals: list[int] = [free]

    @classmethod
    def of(cls, timeline: Timeline) -> FreeTimeline:
        out = cls(0, 0)
        out.times = list(timeline)
        out.vals = list(timeline.values())
        return out

    def as_dict(self) -> Timeline:
        return dict(zip(self.times, self.vals, strict=True))

    def set_key(self, t: float, value: int) -> tuple[int, bool]:
        """Overwrite the value at `t` or insert the key; returns (its index, inserted)."""
        times = self.times
        j = bisect_left(times, t)
        if j < len(times) and times[j] == t:
            self.vals[j] = value
            return j, False
        times.insert(j, t)
        self.vals.insert(j, value)
        return j, True

    def set_and_compress(self, t: float, value: int, first_changed: int, last_changed: int) -> None:
        """`set_key`, then `compress` over the edited indices (shifted by an insertion)."""
        j, inserted = self.set_key(t, value)
        if inserted and j <= last_changed:
            last_changed += 1
        self.compress(min(first_changed, j), max(last_changed, j))

    def compress(self, first_changed: int, last_changed: int) -> None:
        """Restore the no-equal-neighbours invariant after edits at indices in
        [first_changed, last_changed] (upstream compresses the whole map; outside that range
        neighbours already differ, except that last_changed + 1 may now repeat its
        predecessor)."""
        times, vals = self.times, self.vals
        lo = max(first_changed, 1)
        hi = min(last_changed + 2, len(times))
        if lo >= hi:
            return
        last = vals[lo - 1]
        kept_t: list[float] = []
        kept_v: list[int] = []
        for j in range(lo, hi):
            v = vals[j]
            if v != last:
                kept_t.append(times[j])
                kept_v.append(v)
                last = v
        if len(kept_t) != hi - lo:
            times[lo:hi] = kept_t
            vals[lo:hi] = kept_v


def edf_plan_inplace(
    job: EdfJob, timeline: FreeTimeline, num_gpus: int, slot: int
) -> tuple[int, float, bool]:
    """`edf_plan` from `timeline.times[0]`, committing into `timeline` in place.

    Same result as `edf_plan` for a timeline with `FreeTimeline`'s invariants: only the walked
    prefix and the release key are touched, and only they are re-compressed.
    """
    times, vals = timeline.times, timeline.vals
    t0 = times[0]
    base = job.base
    deadline = job.deadline
    iters = job.iter_left
    shares = job.shares(num_gpus)
    rates = job.rates
    last = len(times) - 1
    alloc_now = 0
    ok = True
    first_changed = -1
    i = 0
    while i < last:
        free = vals[i]
        g = base if free >= base else shares[free]
        if i == 0:
            alloc_now = g
        if g > 0:
            if first_changed < 0:
                first_changed = i
            seg_start = times[i]
            rate = rates.get(g)
            if rate is None:
                rate = job.rate(g)
            k = times[i + 1]
            end = math.ceil(seg_start + iters / rate)
            if k >= end:
                if seg_start < end:
                    release_value = free
                    vals[i] = free - g
                else:
                    release_value = num_gpus
                    if g != base or seg_start != end:
                        vals[i] = free - g
                j = bisect_left(times, end)
                if j > last or times[j] != end:
                    timeline.set_and_compress(align(t0, end, slot), release_value, first_changed, i)
                else:
                    timeline.compress(first_changed, i)
                return alloc_now, end, ok and end <= deadline
            iters -= (k - seg_start) * rate
            vals[i] = free - g
        i += 1
        if times[i] > deadline:
            ok = False
    # past the last breakpoint: assume the whole cluster is free again
    if last == 0:
        alloc_now = base
    end = math.ceil(times[last] + iters / job.rate(base))
    if end > deadline:
        ok = False
    vals[last] = num_gpus - base
    if first_changed < 0:
        first_changed = last
    timeline.set_and_compress(align(t0, end, slot), num_gpus, first_changed, last)
    return alloc_now, end, ok


class _EdfSim(PolicyRun):
    """State shared by both EDF variants: jobs, events, placement, upstream's job bookkeeping.

    `running` and `pending` are dicts in upstream's list order (insertion order; a job leaves
    one at most once), so a job is removed without a scan.
    """

    name: ClassVar[str]

    def prepare(self, trace: list[TraceJob]) -> None:
        profiles = self.profiles
        self.jobs: dict[int, EdfJob] = {}
        for t in trace:
            row = profiles.row(t.model, t.batch_size)
            columns = row.columns()
            rates = {g: profiles.tput(t.model, t.batch_size, g) for g, text in row.cells if text}
            base = min(max_gpu_from_profile(profiles, t.model, t.batch_size), self.n)
            max_rate = max(rates.values(), default=0.0)
            self.jobs[t.idx] = EdfJob(t, base, columns, rates, t.iterations, max_rate)
        self.submits = sorted(t.submit_time for t in trace)
        """Every submit time, ascending: where the next arrival can lie (the lazy tail)."""
        self.events = self.engine.events
        self.running: dict[int, EdfJob] = {}
        self.pending: dict[int, EdfJob] = {}
        self.placement = ElasticPlacement(self.cluster)
        self.planner_calls = 0

    # ---- helpers mirroring the upstream job bookkeeping -------------------------------------

    def plan_all(self, jobs: list[EdfJob], now: float) -> bool:
        """Plan `jobs` (sorted in place by deadline, stably) from an empty timeline; True when
        every job meets its deadline."""
        jobs.sort(key=_deadline)
        timeline = FreeTimeline(now, self.n)
        self.planner_calls += len(jobs)
        all_ok = True
        for job in jobs:
            ok = self.plan(job, timeline, now)
            all_ok = all_ok and ok
        return all_ok

    def plan(self, job: EdfJob, timeline: FreeTimeline, now: float) -> bool:
        """Plan one job on `timeline` (committed in place); sets its plan_*, returns whether it
        meets its deadline."""
        n, slot = self.n, self.slot
        if timeline.times[0] != now:
            # a key before the planning time (only with work <= 0): the literal planner
            gpus, end, ok, committed = edf_plan(job, now, timeline.as_dict(), n, slot)
            fresh = FreeTimeline.of(committed)
            timeline.times, timeline.vals = fresh.times, fresh.vals
        else:
            gpus, end, ok = edf_plan_inplace(job, timeline, n, slot)
        job.plan_gpus = gpus
        job.plan_end = end
        return ok

    def apply_plan(self, job: EdfJob, now: float, to_place: list[EdfJob]) -> None:
        """Plain EDF's step for one job of the round: it takes its plan; a running job's event
        moves to the planned end, a pending one given GPUs starts; one with GPUs joins
        `to_place`."""
        job.gpus = job.plan_gpus
        old_end = job.end_time
        job.end_time = job.plan_end
        if job.running:
            if job.gpus > 0:
                to_place.append(job)
            self.events.move_completion(job.idx, old_end, job.end_time)
        elif job.gpus > 0:
            to_place.append(job)
            self.start(job, now)
            self.events.add_completion(job.idx, job.end_time)

    def start(self, job: EdfJob, now: float) -> None:
        """Pending -> running (upstream `remove_from_pending`)."""
        job.start_time = now
        del self.pending[job.idx]
        self.running[job.idx] = job
        job.running = True
        if not job.trace.best_effort:
            self.engine.accepted += 1

    def admit(self, job: EdfJob) -> None:
        job.admitted = True
        self.pending[job.idx] = job

    def decline_arrival(self, job: EdfJob) -> None:
        # quirk: upstream counts every rejected arrival, best-effort ones included
        self.engine.declined += 1
        job.met = False if not job.trace.best_effort else None
        job.done = True
        self.engine.job_done()

    def complete(self, job: EdfJob) -> None:
        late = job.end_time > job.deadline
        if late:
            self.engine.declined += 1
            self.engine.accepted -= 1
        job.met = None if job.trace.best_effort else not late
        job.done = True
        self.running.pop(job.idx, None)
        self.engine.job_done()

    def place(self, job: EdfJob) -> None:
        if not self.placement.place(job.idx, job.gpus):
            raise SimulationError(
                f"job {job.idx} with {job.gpus} GPUs cannot be placed (upstream asserts here)"
            )

    def log_round(self, now: float, flags_needed: bool) -> None:
        """The round's sample (docs/engine.md#rounds) and, for EDF+AC, the cache flags."""
        layout = None
        if flags_needed or self.options.record_gpu_map:
            layout = self.placement.layout()
        if flags_needed and layout is not None:
            for idx, cached in cache_flags(layout, self.engine.cache).items():
                self.jobs[idx].cached = cached
        gpu_map = layout.gpu_map if (layout and self.options.record_gpu_map) else None
        running = list(self.running.values())
        self.engine.record_round(now, running, len(self.pending), self.placement, gpu_map)

    def outcome(self) -> RunOutcome:
        return self.engine.outcome(
            planned_job_outcomes(self.jobs.values()),
            {"policy": self.name, "planner_calls": self.planner_calls},
        )

    def run(self) -> None:
        """Rounds at the first event until no event and no pending job is left."""
        events = self.events
        now = events.first.time
        time_diff = 0
        while events or self.pending:
            if not events:
                raise SimulationError(f"pending jobs but no events left at {now}")
            self.engine.advance(self.progressing(), time_diff, now)
            self.clear_overheads()
            event = events.first
            self.decide(event, now)
            self.log_round(event.time, flags_needed=self.pays_modelled_overhead)
            events.remove(event)
            if not events:
                # upstream steps without moving `now` (never reached: running jobs have events)
                time_diff = 10 if self.pays_modelled_overhead else self.slot
                continue
            # plain EDF pays nothing in simulation, yet counts rounds (the engine decides)
            self.engine.charge(list(self.running.values()), now)
            now, time_diff = self.engine.next_round(now)

    @abstractmethod
    def progressing(self) -> Iterable[EdfJob]:
        """What upstream advances each round: the runnable jobs in its list's order (the
        engine skips those without GPUs)."""

    @abstractmethod
    def clear_overheads(self) -> None:
        """Zero the overhead of every runnable job (only running ones can hold any)."""

    @abstractmethod
    def decide(self, event: Event, now: float) -> None:
        """Completions, planning, admission and placement of the round at `event`."""


# C-level sort keys
_deadline = attrgetter("trace.deadline")
_gpus = attrgetter("gpus")
_order_key = attrgetter("order_key")


class _Edf(_EdfSim):
    """EDF without admission control (`--schedule=edf`): every arrival admitted; no modelled
    overhead (upstream comments the estimate out), the measured one on a testbed.

    Upstream's round re-plans every runnable job; only what can change is touched here
    (docs/policies/edf.md#the-lazy-tail, #incremental-bookkeeping): the deadline order is kept
    sorted as jobs arrive and leave, planning stops after the last job whose plan can be read
    before the next round, and upstream's runnable-list order (sorted in rounds without
    arrivals, arrivals appended otherwise) is recomputed only for the jobs a round acts on.
    """

    name = "edf"
    pays_modelled_overhead = False

    def prepare(self, trace: list[TraceJob]) -> None:
        super().prepare(trace)
        self.order: list[EdfJob] = []
        """Runnable jobs (and this round's arrivals) by `order_key`: the planning order."""
        self.running_order: list[EdfJob] = []
        """Running jobs by `order_key`."""
        self.no_work: list[EdfJob] = []
        """Admitted jobs with no work or no throughput at admission, by `order_key`: they
        stay so, and the lazy tail plans up to the last of them."""
        self.holders: list[EdfJob] = []
        """Jobs holding GPUs since the last round, in upstream's runnable-list order."""
        self.admissions = 0
        self.sorted_upto = 0
        """Jobs admitted up to this number are in the sorted part of upstream's runnable list
        (it is sorted in rounds without arrivals; arrivals are appended after)."""

    def progressing(self) -> Iterable[EdfJob]:
        return self.holders

    def clear_overheads(self) -> None:
        for job in self.running.values():
            job.overhead = 0

    def list_position(self, job: EdfJob) -> tuple[int, ...]:
        """Sort key of `job`'s place in upstream's runnable list."""
        seq = job.order_key[1]
        if seq <= self.sorted_upto:
            return (0, job.deadline, seq)
        return (1, seq)

    def position(self, job: EdfJob) -> int:
        """`job`'s index in the planning order."""
        return bisect_left(self.order, job.order_key, key=_order_key)

    def enqueue(self, job: EdfJob) -> None:
        """An arrival joins the planning order: by deadline, then arrival (upstream's stable
        sort of the runnable list with the arrivals appended)."""
        self.admissions += 1
        job.order_key = (job.deadline, self.admissions)
        insort(self.order, job, key=_order_key)
        if job.iter_left <= 0 or job.max_rate <= 0:
            insort(self.no_work, job, key=_order_key)

    def start(self, job: EdfJob, now: float) -> None:
        super().start(job, now)
        insort(self.running_order, job, key=_order_key)

    def complete(self, job: EdfJob) -> None:
        super().complete(job)
        for ordered in (self.order, self.running_order, self.no_work):
            i = bisect_left(ordered, job.order_key, key=_order_key)
            if i < len(ordered) and ordered[i] is job:
                del ordered[i]

    def plan_round(self, now: float) -> int:
        """Plan the deadline order from an empty timeline up to the last job whose plan can be
        read before the next round (docs/policies/edf.md#the-lazy-tail); returns how many
        jobs at the head of the order were planned.

        Running jobs after those keep their filed end (plan_gpus = 0); pending ones keep
        plan_gpus = 0 and a stale plan_end (recomputed before they can start).
        """
        jobs, running = self.order, self.running_order
        timeline = FreeTimeline(now, self.n)
        stop = self.position(running[-1]) + 1 if running else 0
        self.planner_calls += len(jobs)
        first_end = math.inf
        tail_checked = False
        for i, job in enumerate(jobs):
            if timeline.vals[0] == 0:
                if not tail_checked and timeline.times[0] == now:
                    tail_checked = True
                    stop = min(stop, self.needed_until(i, stop, now, first_end))
                if i >= stop:
                    first_running = bisect_left(running, job.order_key, key=_order_key)
                    for rest in running[first_running:]:
                        rest.plan_gpus = 0
                        rest.plan_end = rest.end_time
                    return i
            self.plan(job, timeline, now)
            if job.plan_gpus > 0 and now < job.plan_end < first_end:
                first_end = job.plan_end
        return len(jobs)

    def needed_until(self, first: int, stop: int, now: float, first_end: float) -> int:
        """One past the last job in `order[first:stop]` whose plan can be read before the next
        round, when every job from `first` on gets 0 GPUs now (docs/policies/edf.md#the-lazy-tail).

        The next round comes no later than `now + slot` or the earliest event that will still
        be filed then: the next arrival's (at most a slot after its submit time) or the
        completion of a job planned to hold GPUs (`first_end`). A running job starved now
        ends no sooner than `now + iter_left / max_rate`; if that and its filed end both lie
        past that horizon, neither its event nor its plan is read before it is planned again.
        A job without work or throughput is planned (the planner's special cases); pending
        jobs are otherwise never read, so only running jobs and those are looked at.
        """
        slot = self.slot
        nxt = bisect_right(self.submits, now)
        arrival = self.submits[nxt] + slot if nxt < len(self.submits) else math.inf
        horizon = max(now + slot, min(arrival, first_end)) + 1
        if horizon == math.inf:
            return stop
        if stop <= first:
            return first
        jobs = self.order
        first_key, last_key = jobs[first].order_key, jobs[stop - 1].order_key
        until = first
        no_work = self.no_work
        k = bisect_right(no_work, last_key, key=_order_key)
        if k > 0 and no_work[k - 1].order_key >= first_key:
            until = self.position(no_work[k - 1]) + 1
        running = self.running_order
        for j in range(bisect_right(running, last_key, key=_order_key) - 1, -1, -1):
            job = running[j]
            if job.order_key < first_key:
                break
            if job.iter_left <= 0 or job.max_rate <= 0:
                return max(until, self.position(job) + 1)
            # 2 s below the real-number bound: float rounding in the walk is far smaller
            earliest = now + job.iter_left / job.max_rate - 2
            if job.end_time <= horizon or earliest <= horizon:
                return max(until, self.position(job) + 1)
        return until

    def decide(self, event: Event, now: float) -> None:
        jobs, placement = self.jobs, self.placement
        event_time = event.time
        for idx in event.completions:
            placement.release(idx)
            self.complete(jobs[idx])
        arrivals = [jobs[i] for i in event.arrivals]
        for job in arrivals:
            self.enqueue(job)
        planned = self.plan_round(event_time)
        for job in arrivals:
            self.admit(job)
        if not arrivals:
            self.sorted_upto = self.admissions
        for job in self.running.values():
            if job.gpus > 0:
                placement.release(job.idx)
        # the jobs this round changes: planned ones that run or start, and every job that held
        # GPUs (a running job left unplanned keeps its end; one without GPUs stays as it is)
        acting = {j.idx: j for j in self.order[:planned] if j.running or j.plan_gpus > 0}
        for job in self.holders:
            if not job.done:
                acting.setdefault(job.idx, job)
        to_place: list[EdfJob] = []
        for job in sorted(acting.values(), key=self.list_position):
            self.apply_plan(job, event_time, to_place)
        self.holders = list(to_place)
        to_place.sort(key=_gpus, reverse=True)
        for job in to_place:
            self.place(job)


class _EdfWithAdmission(_EdfSim):
    """EDF + admission control (`--schedule=edf-accessctrl`): arrivals tested one by one."""

    name = "edf-accessctrl"

    def prepare(self, trace: list[TraceJob]) -> None:
        super().prepare(trace)
        self.runnable: list[EdfJob] = []
        """Upstream's runnable list, in its order (re-sorted by deadline when planned)."""

    def progressing(self) -> Iterable[EdfJob]:
        return self.runnable

    def clear_overheads(self) -> None:
        for job in self.runnable:
            job.overhead = 0

    def admit(self, job: EdfJob) -> None:
        super().admit(job)
        self.runnable.append(job)

    def complete(self, job: EdfJob) -> None:
        super().complete(job)
        if job in self.runnable:
            self.runnable.remove(job)

    def decide(self, event: Event, now: float) -> None:
        sim, jobs, events, n = self, self.jobs, self.events, self.n
        round_start_end: dict[int, float] = {}
        for job in sim.runnable:
            round_start_end[job.idx] = job.end_time
            if sim.placement.is_placed(job.idx):
                sim.placement.release(job.idx)
        if sim.placement.free_gpus() != n:
            raise SimulationError(f"GPUs still held after releasing every job at {now}")
        event_time = event.time
        for idx in event.completions:
            sim.complete(jobs[idx])
        admitted_any = False
        for idx in event.arrivals:
            job = jobs[idx]
            if not sim.plan_all([*sim.runnable, job], event_time):
                sim.decline_arrival(job)
                continue
            sim.admit(job)
            admitted_any = True
            for r in sim.running.values():
                r.gpus = r.plan_gpus
                old_end = r.end_time
                r.end_time = r.plan_end
                events.move_completion(r.idx, old_end, r.end_time)
            starting: list[EdfJob] = []
            for p in sim.pending.values():
                p.gpus = p.plan_gpus
                p.end_time = p.plan_end
                if p.gpus > 0:
                    starting.append(p)
            for p in starting:
                sim.start(p, event_time)
                events.add_completion(p.idx, p.end_time)
        if admitted_any:
            # upstream places in runnable-list order here, without the GPU-count sort
            for job in sim.runnable:
                if job.gpus > 0:
                    sim.place(job)
        else:
            sim.plan_all(sim.runnable, event_time)
            for job in list(sim.runnable):
                job.gpus = job.plan_gpus
                if job.gpus == 0:
                    # quirk: a running job cut to 0 GPUs keeps its old end time and event
                    continue
                sim.place(job)
                if not job.running:
                    sim.start(job, event_time)
                    # filed at the stale end time first, then moved (upstream order)
                    events.add_completion(job.idx, job.end_time)
                job.end_time = job.plan_end
                events.move_completion(job.idx, round_start_end[job.idx], job.end_time)


simulate = _Edf.simulate
simulate_with_admission = _EdfWithAdmission.simulate
