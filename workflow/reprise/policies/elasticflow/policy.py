"""ElasticFlow (`ef-accessctrl`) and ElasticFlow without admission control (`ef`).

See docs/policies/elasticflow.md.

Both re-plan every job with the Minimum-Satisfactory-Share planner each round, then hand out the
leftover GPUs by the (descending) marginal GPU-time rule; they differ in admission and bookkeeping.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from typing import ClassVar

from reprise.data.traces import TraceJob
from reprise.errors import SimulationError
from reprise.policies.elasticflow.leftover import CurveTable, Grant, distribute_compiled
from reprise.policies.elasticflow.limits import max_gpu_elasticflow
from reprise.policies.elasticflow.planner import (
    Allocation,
    Plan,
    ScalingCurve,
    TimelineEdit,
    allocation_gpu_time,
    first_break_given_back,
    first_key_after,
    is_ascending,
    plan_job,
    plan_with_fixed_start,
    price_fixed_start,
    timeline_without,
)
from reprise.policies.elasticflow.pricing import (
    Certificate,
    SortedTimeline,
    plan_is_integral,
    price_given_back,
    still_holds,
)
from reprise.records.outcome import RunOutcome
from reprise.sim.engine import PolicyRun
from reprise.sim.events import Event
from reprise.sim.jobstate import planned_job_outcomes
from reprise.sim.placement import NODE_SET_CLASSES, ElasticPlacement, cache_flags
from reprise.sim.timeline import Timeline
from reprise.sim.timing import align

NO_CHANGE = sys.maxsize
"""Upstream's "no re-plan time" sentinel (a re-plan mark can land there after the last job)."""


@dataclass(slots=True, eq=False)
class EfJob:
    """Mutable state of one job; field names follow upstream's job dict where it helps."""

    trace: TraceJob
    curve: ScalingCurve
    iter_left: float
    gpus: int = 0
    alloc: Allocation = field(default_factory=dict)
    end_time: float = 0
    """Planned aligned end plus the overheads pushed onto it; the exact end once finished early."""
    real_end: float | None = None
    """Unaligned planned end of the latest plan (no overheads); None before the first plan."""
    overhead: float = 0.0
    cached: bool = False
    start_time: float | None = None
    admitted: bool = False
    pending: bool = False
    running: bool = False
    done: bool = False
    met: bool | None = None
    next_gpus: int = 0
    marginal: float = 0.0
    offer: Plan | None = None
    """Tentative plan with `next_gpus` GPUs from now (from the latest marginal computation);
    None when the marginal was known without it (it is then planned when granted)."""
    own_gpu_time: float = 0.0
    """GPU-seconds of the job's current plan (the marginal's baseline; set per leftover pass)."""
    price_stamp: int = -1
    """Timeline stamp (`_EfSim.stamp`) the marginal holds for."""
    price_break: float | None = None
    """First breakpoint after now of the given-back timeline the marginal was planned on;
    None when the marginal is not reusable (a failure plan, or a plan with unsorted keys)."""
    price_fixed_end: float | None = None
    """The aligned end of a "fixed" tentative plan: it stays that plan (same marginal) for as
    long as the given-back timeline has no breakpoint before this end."""
    price_cert: Certificate | None = None
    """What the marginal read of the timeline, where `price_given_back` could say (else None)."""
    checked_alloc: Allocation | None = None
    checked_end: float = 0.0
    whole_plan: bool = False
    """`plan_is_integral` of `checked_alloc` (held, so identity is safe) and `checked_end`."""

    @property
    def idx(self) -> int:
        return self.trace.idx

    @property
    def deadline(self) -> int:
        return self.trace.deadline

    def rate(self, gpus: int) -> float:
        return self.curve.rate(gpus)

    @property
    def progress_limit(self) -> float:
        """Progress stops at the unaligned planned end (docs/policies/elasticflow.md#finish)."""
        return self.real_end if self.real_end is not None else self.end_time


def _deadline(job: EfJob) -> int:
    return job.deadline


def _gpus(job: EfJob) -> int:
    return job.gpus


def _marginal(job: EfJob) -> float:
    return job.marginal


class _EfSim(PolicyRun):
    """State of one run: job lists in upstream's orders, events, timeline, placement."""

    admission: ClassVar[bool]
    name: ClassVar[str]
    compiled_leftover: ClassVar[bool] = True
    """Price leftover GPUs with leftover_kernel.py (False: the Python reference pass)."""

    def prepare(self, trace: list[TraceJob]) -> None:
        options, profiles = self.options, self.profiles
        self.gpn = self.cluster.gpus_per_node
        self.jobs: dict[int, EfJob] = {}
        # one curve per (model, batch size), shared by its jobs: a curve caches its fit table
        # (an entry per cluster GPU), which per job would be most of a long trace's memory
        curves: dict[tuple[str, int], ScalingCurve] = {}
        for t in trace:
            curve = curves.get((t.model, t.batch_size))
            if curve is None:
                max_gpu = max_gpu_elasticflow(options.gpu_type, t.model, t.batch_size)
                row = profiles.row(t.model, t.batch_size)
                levels: list[int] = []
                for g in row.columns():
                    if g > max_gpu:
                        break
                    levels.append(g)
                rates = {g: float(text) for g, text in row.cells if g in levels and text.strip()}
                curve = curves[t.model, t.batch_size] = ScalingCurve(levels, rates, max_gpu)
            self.jobs[t.idx] = EfJob(t, curve, t.iterations)
        self.curve_table = CurveTable(list(curves.values()), self.n)
        self.events = self.engine.events
        self.runnable: list[EfJob] = []
        self.running: list[EfJob] = []
        self.pending: list[EfJob] = []
        self.timeline: Timeline = {}
        self.sorted_timeline: tuple[Timeline, SortedTimeline] = ({}, SortedTimeline({}))
        """The current timeline as lists (`price_given_back`), rebuilt when it is replaced."""
        self.placement = ElasticPlacement(self.cluster)
        self.planner_calls = 0
        self.marginal_calls = 0
        self.grants = 0
        self.rejected_batches = 0
        self.stamp = 0
        """Counts timeline edits while leftover GPUs are handed out (see `price`)."""
        self.first_change: float = NO_CHANGE
        """Earliest plan change after the current round (ef-accessctrl's one re-plan mark)."""

    # ---- job bookkeeping (upstream JOBS methods) --------------------------------------------

    def admit(self, job: EfJob) -> None:
        job.admitted = True
        job.pending = True
        self.pending.append(job)
        self.runnable.append(job)

    def decline(self, job: EfJob) -> None:
        self.engine.declined += 1
        job.met = False
        job.done = True
        self.engine.job_done()

    def start(self, job: EfJob, now: float) -> None:
        """Pending -> running (upstream `remove_from_pending`)."""
        job.start_time = now
        job.pending = False
        job.running = True
        self.pending.remove(job)
        self.running.append(job)
        if not job.trace.best_effort:
            self.engine.accepted += 1

    def complete(self, job: EfJob, late: bool) -> None:
        if late:
            self.engine.declined += 1
            self.engine.accepted -= 1
        job.met = None if job.trace.best_effort else not late
        job.done = True
        job.running = job.pending = False
        if job in self.running:
            self.running.remove(job)
        if job in self.runnable:
            self.runnable.remove(job)
        self.engine.job_done()

    # ---- planning ---------------------------------------------------------------------------

    def plan_in_order(self, jobs: list[EfJob], now: float) -> tuple[list[Plan], Timeline, bool]:
        """Plan `jobs` in list order from an empty timeline (upstream `estimate_all_jobs`)."""
        timeline: Timeline = {now: self.n}
        plans: list[Plan] = []
        all_met = True
        for job in jobs:
            self.planner_calls += 1
            plan = plan_job(
                job.curve, job.iter_left, job.deadline, now, timeline, self.n, self.slot
            )
            timeline = plan.timeline
            plans.append(plan)
            all_met = all_met and plan.meets_deadline
        return plans, timeline, all_met

    @staticmethod
    def adopt(jobs: list[EfJob], plans: list[Plan]) -> None:
        for job, plan in zip(jobs, plans, strict=True):
            job.alloc = plan.alloc
            job.end_time = plan.end
            job.real_end = plan.real_end

    def release_placed(self, jobs: list[EfJob]) -> None:
        for job in jobs:
            if self.placement.is_placed(job.idx):
                self.placement.release(job.idx)

    def apply_plans(self, now: float, old_end: dict[int, float]) -> None:
        """Every runnable job takes its planned GPUs for now; completions follow the plans."""
        for job in self.runnable:
            job.gpus = job.alloc[now]
            self.events.move_completion(job.idx, old_end.get(job.idx, 0), job.end_time)

    # ---- leftover GPUs (docs/policies/elasticflow.md#leftover) ------------------------------

    def price(self, job: EfJob, free: int, now: float, edit: TimelineEdit | None = None) -> None:
        """Marginal GPU-time of growing `job` to its next level now
        (docs/policies/elasticflow.md#leftover).

        The tentative plan is kept only where it had to be computed. A pending job's marginal
        is +inf whatever its plan. A running job's marginal is reused where the timeline `edit`
        since the last pricing cannot have changed it (`marginal_holds`); else the certified
        shortcut prices it (`price_certified`), and where that cannot decide, the planner.
        """
        if job.next_gpus - job.gpus > free or job.next_gpus == job.gpus:
            job.marginal = -math.inf
            return
        self.marginal_calls += 1
        if job.gpus == 0:
            job.marginal = math.inf
            job.offer = None
            job.price_stamp = self.stamp
            job.price_break = job.price_fixed_end = None
            return
        d_al = align(now, job.deadline, self.slot)
        if edit is not None and self.marginal_holds(job, edit, d_al):
            job.offer = None
            job.price_stamp = self.stamp
        elif not self.price_certified(job, now):
            self.price_by_planner(job, now, d_al)

    def marginal_holds(self, job: EfJob, edit: TimelineEdit, d_al: float) -> bool:
        """Whether the marginal priced before `edit` (the previous stamp) still holds: the
        edit leaves the given-back timeline's first breakpoint where it was and, for a "share"
        plan, the timeline between that breakpoint and the aligned deadline `d_al` alone (or
        within the price's certificate); a fixed-start plan in the "fixed" or "share" branch
        reads nothing else. A "fixed" plan holds while no breakpoint precedes its end."""
        brk = job.price_break
        if job.price_stamp != self.stamp - 1 or brk is None:
            return False
        fixed_end = job.price_fixed_end
        if not (
            fixed_end is not None
            or not edit.touches(brk, d_al)
            or (
                job.price_cert is not None
                and still_holds(job.price_cert, edit, self.sorted_now(), brk, d_al)
            )
        ):
            return False
        listed = self.sorted_now()
        lists = None if listed.keys is None else (listed.keys, listed.values)
        applies, now_brk = first_break_given_back(self.timeline, job.alloc, job.end_time, lists)
        if not applies:
            return False
        if fixed_end is None:
            return now_brk == brk
        return (now_brk if now_brk is not None else d_al) >= fixed_end

    def price_certified(self, job: EfJob, now: float) -> bool:
        """Price `job` with the one-pass shortcut (`price_given_back`); False where it cannot
        decide and the planner must."""
        if job.checked_alloc is not job.alloc or job.checked_end != job.end_time:
            job.checked_alloc, job.checked_end = job.alloc, job.end_time
            job.whole_plan = plan_is_integral(job.alloc, job.end_time)
        fast = price_given_back(
            job.curve, job.iter_left, job.deadline, now, self.sorted_now(), job.alloc,
            job.end_time, self.n, self.slot, job.next_gpus, job.whole_plan,
        )  # fmt: skip
        if fast is None:
            return False
        branch, gpu_time, end, brk, job.price_cert = fast
        job.offer = None
        job.marginal = (gpu_time - job.own_gpu_time) / (job.next_gpus - job.gpus)
        job.price_stamp = self.stamp
        job.price_break = brk
        job.price_fixed_end = end if branch == "fixed" and brk is not None else None
        return True

    def price_by_planner(self, job: EfJob, now: float, d_al: float) -> None:
        """Price `job` with the planner's own loops; its tentative plan is kept where the
        pricing had to build one (a failure plan)."""
        job.price_cert = None
        args = (job.curve, job.iter_left, job.deadline, now)
        # the pricing reads the given-back timeline only up to the aligned deadline
        given_back = timeline_without(self.timeline, job.alloc, job.end_time, self.n, d_al)
        priced = price_fixed_start(*args, given_back, self.n, self.slot, job.next_gpus)
        if priced is None:
            given_back = timeline_without(self.timeline, job.alloc, job.end_time, self.n)
            offer = plan_with_fixed_start(*args, given_back, self.n, self.slot, job.next_gpus)
            job.offer = offer
            branch, gpu_time, end = offer.branch, offer.gpu_time, offer.end
        else:
            job.offer = None
            branch, gpu_time, end = priced
        job.marginal = (gpu_time - job.own_gpu_time) / (job.next_gpus - job.gpus)
        job.price_stamp = self.stamp
        job.price_break = job.price_fixed_end = None
        if branch in ("fixed", "share") and is_ascending(job.alloc):
            job.price_break = first_key_after(given_back, now)
            if branch == "fixed" and job.price_break is not None:
                job.price_fixed_end = end

    def sorted_now(self) -> SortedTimeline:
        """The current timeline as lists, rebuilt once after each change."""
        if self.sorted_timeline[0] is not self.timeline:
            self.sorted_timeline = (self.timeline, SortedTimeline(self.timeline))
        return self.sorted_timeline[1]

    def offer_for(self, job: EfJob, now: float) -> Plan:
        """The job's plan with `next_gpus` GPUs from now, on the timeline without its own."""
        given_back = timeline_without(self.timeline, job.alloc, job.end_time, self.n)
        return plan_with_fixed_start(
            job.curve,
            job.iter_left,
            job.deadline,
            now,
            given_back,
            self.n,
            self.slot,
            job.next_gpus,
        )

    def distribute_leftover(self, now: float) -> None:
        """Grow jobs one level at a time, highest marginal first (quirk: DESCENDING sort)."""
        used = 0
        for job in self.runnable:
            job.next_gpus = job.curve.next_level(job.gpus)
            job.own_gpu_time = allocation_gpu_time(job.alloc, job.end_time)
            used += job.gpus
        free = self.n - used
        if free < 0 or self.timeline.get(now) != free:
            raise SimulationError(
                f"free GPUs {free} at {now} disagree with the timeline (upstream asserts)"
            )
        if free == 0:
            return
        self.stamp += 2  # nothing priced in an earlier round is reused
        if self.compiled_leftover:
            distribute_compiled(self, self.curve_table, now, free)
        else:
            self.distribute_plain(now, free)

    def distribute_plain(self, now: float, free: int) -> None:
        """The leftover pass in Python, job by job: the reference `distribute_compiled`
        (leftover.py) is tested against."""
        for job in self.runnable:
            self.price(job, free, now)
        self.runnable.sort(key=_marginal, reverse=True)
        granted = True
        while free > 0 and granted:
            granted = False
            edit: TimelineEdit | None = None
            for job in self.runnable:
                if job.next_gpus - job.gpus > free or job.next_gpus == job.gpus:
                    continue
                offer = job.offer
                if offer is None:
                    # the same plan the last pricing pass would have kept: nothing changed since
                    offer = self.offer_for(job, now)
                edit = TimelineEdit(self.timeline, offer.timeline)
                free = self.take_grant(job, offer, now, free)
                granted = True
                break
            # quirk: re-priced (with the new free count) even once nothing is left to give
            self.stamp += 1
            for job in self.runnable:
                if job.next_gpus - job.gpus > 0:
                    self.price(job, free, now, edit)
            self.runnable.sort(key=_marginal, reverse=True)

    def take_grant(self, job: EfJob, offer: Grant, now: float, free: int) -> int:
        """`job` grows one level on the `offer`'s plan and timeline (starting if pending);
        returns the free GPUs left."""
        self.grants += 1
        job.price_stamp = -1
        self.timeline = offer.timeline
        job.alloc = offer.alloc
        old_gpus = job.gpus
        job.gpus = job.next_gpus
        old_end = job.end_time
        job.end_time = offer.end
        if self.options.ef_scaleup_updates_real_end:
            job.real_end = offer.real_end  # HEAD (a8c66e6) only
        if job.pending:
            self.start(job, now)
        self.events.move_completion(job.idx, old_end, job.end_time)
        free -= job.gpus - old_gpus
        if self.timeline.get(now) != free:
            raise SimulationError(f"timeline and free GPUs disagree at {now}")
        job.next_gpus = job.curve.next_level(job.gpus)
        job.own_gpu_time = allocation_gpu_time(job.alloc, job.end_time)
        job.offer = None
        return free

    # ---- placement, round log, overheads ------------------------------------------------------

    def place_all(self, jobs: list[EfJob], now: float) -> None:
        """Big jobs in list order, then each smaller class (descending) in list order."""
        first_change: float = NO_CHANGE
        for job in jobs:
            job.alloc = dict(sorted(job.alloc.items()))
            for t in job.alloc:
                if t > now:
                    if self.admission:
                        first_change = min(first_change, t)
                    else:
                        self.events.add_mark(t)
                    break
            if job.gpus >= self.gpn:
                self._place(job)
        for size in reversed(NODE_SET_CLASSES):
            if size >= self.gpn:
                continue
            for job in jobs:
                if job.gpus == size:
                    self._place(job)
        if self.admission:
            self.first_change = first_change

    def _place(self, job: EfJob) -> None:
        if not self.placement.place(job.idx, job.gpus):
            raise SimulationError(
                f"job {job.idx} with {job.gpus} GPUs cannot be placed (upstream asserts here)"
            )

    def log_round(self, now: float) -> None:
        """The round's sample (docs/engine.md#rounds); sets each placed job's cache flag."""
        layout = self.placement.layout()
        for idx, cached in cache_flags(layout, self.engine.cache).items():
            self.jobs[idx].cached = cached
        gpu_map = layout.gpu_map if self.options.record_gpu_map else None
        self.engine.record_round(now, self.running, len(self.pending), self.placement, gpu_map)

    def start_pending(self, now: float, add_marks: bool) -> None:
        """Pending jobs whose plan gives them GPUs now (not later) start (3.1.1 step 5a)."""
        starters: list[EfJob] = []
        for job in self.pending:
            later = False
            first_use = now
            for t, g in job.alloc.items():
                first_use = t
                if g == 0:
                    continue
                if t > now:
                    later = True
                break
            job.gpus = job.alloc[now]
            if later and add_marks:
                self.events.add_mark(first_use)
            if job.gpus <= self.placement.free_gpus() and not later:
                starters.append(job)
        for job in starters:
            self.start(job, now)
            self.events.add_completion(job.idx, job.end_time)

    # ---- results ------------------------------------------------------------------------------

    def outcome(self) -> RunOutcome:
        return self.engine.outcome(
            planned_job_outcomes(self.jobs.values()),
            {
                "policy": self.name,
                "planner_calls": self.planner_calls,
                "marginal_calls": self.marginal_calls,
                "scale_ups": self.grants,
                "rejected_batches": self.rejected_batches,
                "ef_scaleup_updates_real_end": self.options.ef_scaleup_updates_real_end,
            },
        )

    def next_round(self, now: float, event: Event | None) -> tuple[float, int]:
        if event is None:
            raise SimulationError(f"round at {now} had no event (upstream crashes here)")
        return self.engine.next_round(now)


def _run_with_admission(sim: _EfSim) -> None:
    """The ef-accessctrl round loop (docs/policies/elasticflow.md#round)."""
    jobs = sim.jobs
    events = sim.events
    now: float = events.first.time
    time_diff = 0
    idle_skip = False
    while events or sim.pending or sim.running:
        if idle_skip:
            # upstream's next iteration finds no event at `now` and crashes on it
            raise SimulationError(f"idle event at {now} followed by more events (upstream crashes)")
        sim.engine.advance(sim.runnable, time_diff, now)
        for job in sim.runnable:
            job.overhead = 0
        event = events.find(now)
        if event is None:
            raise SimulationError(f"no event at {now} (upstream crashes here)")
        events.remove(event)
        if not sim.pending and not sim.running and event.is_empty():
            idle_skip = True
            continue
        for idx in event.completions:
            job = jobs[idx]
            if not sim.placement.is_placed(idx):
                continue  # quirk: listed but never placed (no GPUs): stays runnable
            sim.placement.release(idx)
            late = job.real_end is not None and job.real_end > job.deadline
            sim.complete(job, late)
        old_end = {job.idx: job.end_time for job in sim.runnable}
        arrivals = [jobs[i] for i in event.arrivals]
        if arrivals:
            candidates = sorted(sim.runnable + arrivals, key=_deadline)
            sim.release_placed(candidates)
            plans, timeline, all_met = sim.plan_in_order(candidates, now)
            if all_met:
                sim.adopt(candidates, plans)
                sim.timeline = timeline
                for job in arrivals:
                    sim.admit(job)
                sim.runnable.sort(key=_deadline)
            else:
                # all-or-nothing per merged batch; best-effort arrivals are never refused
                sim.rejected_batches += 1
                for job in arrivals:
                    if job.trace.best_effort:
                        sim.admit(job)
                    else:
                        sim.decline(job)
                sim.runnable.sort(key=_deadline)
                plans, sim.timeline, _ = sim.plan_in_order(sim.runnable, now)
                sim.adopt(sim.runnable, plans)
        else:
            sim.runnable.sort(key=_deadline)
            sim.release_placed(sim.runnable)
            plans, sim.timeline, _ = sim.plan_in_order(sim.runnable, now)
            sim.adopt(sim.runnable, plans)
        sim.apply_plans(now, old_end)

        if sim.placement.free_gpus() <= 0:
            raise SimulationError(f"no free GPUs after releasing everything at {now}")
        sim.start_pending(now, add_marks=False)
        sim.distribute_leftover(now)
        sim.runnable.sort(key=_gpus, reverse=True)
        sim.place_all(sim.runnable, now)
        sim.log_round(now)

        events.sort()
        if not events or sim.first_change < events.first.time:
            events.add_mark(sim.first_change)
            events.sort()
        sim.engine.charge(sim.runnable, now)
        now, time_diff = sim.next_round(now, event)


def _run_without_admission(sim: _EfSim) -> None:
    """The ef round loop: every arrival admitted, late jobs keep competing
    (docs/policies/elasticflow.md#without-admission)."""
    jobs = sim.jobs
    events = sim.events
    now: float = events.first.time
    time_diff = 0
    while events or sim.pending or sim.running:
        sim.engine.advance(sim.runnable, time_diff, now)
        for job in sim.runnable:
            job.overhead = 0
        event = events.find(now)
        if event is not None:
            for idx in event.completions:
                job = jobs[idx]
                if not sim.placement.is_placed(idx):
                    raise SimulationError(
                        f"job {idx} completes at {now} without a placement (upstream crashes)"
                    )
                sim.placement.release(idx)
                sim.complete(job, job.end_time > job.deadline)
            old_end = {job.idx: job.end_time for job in sim.runnable}
            for idx in event.arrivals:
                sim.admit(jobs[idx])
            sim.runnable.sort(key=_deadline)
            sim.release_placed(sim.runnable)
            plans, sim.timeline, _ = sim.plan_in_order(sim.runnable, now)
            sim.adopt(sim.runnable, plans)
            sim.apply_plans(now, old_end)
            events.remove(event)

        if sim.placement.free_gpus() > 0:
            sim.start_pending(now, add_marks=True)
            sim.distribute_leftover(now)
            sim.place_all(sim.running, now)
            sim.log_round(now)

        if not events:
            if sim.pending or sim.running:
                # upstream steps 10 s and then fails on the missing event
                raise SimulationError(f"jobs left but no events at {now} (upstream crashes)")
            break
        sim.engine.charge(sim.running, now)
        now, time_diff = sim.next_round(now, event)
        if time_diff < 0:
            raise SimulationError(f"time goes backwards at {now} (upstream asserts)")


class _ElasticFlow(_EfSim):
    """ElasticFlow as published (`--schedule=ef-accessctrl`)."""

    admission = True
    name = "ef-accessctrl"

    def run(self) -> None:
        _run_with_admission(self)


class _ElasticFlowWithoutAdmission(_EfSim):
    """ "EDF + Elastic Scaling" of Fig. 9 (`--schedule=ef`): ElasticFlow minus admission control."""

    admission = False
    name = "ef"

    def run(self) -> None:
        _run_without_admission(self)


simulate_with_admission = _ElasticFlow.simulate
simulate_without_admission = _ElasticFlowWithoutAdmission.simulate
