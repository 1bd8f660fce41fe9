"""ElasticFlow's Minimum-Satisfactory-Share planner on the free-GPU timeline
(docs/engine.md#timeline, docs/policies/elasticflow.md#planner).

Policy-free: it knows a job only through its scaling curve, remaining iterations and deadline.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping

from reprise.errors import SimulationError
from reprise.sim.timeline import Timeline, merge_runs
from reprise.sim.timing import align

Allocation = dict[float, int]
"""A job's per-interval plan: GPUs from each key time until the next key."""


class ScalingCurve:
    """The GPU counts a job may use ("levels", profile columns up to max_gpu, in column order)
    and its throughput (iterations per second) at each of them."""

    __slots__ = ("_fit", "levels", "max_gpu", "rates")

    def __init__(self, levels: Iterable[int], rates: Mapping[int, float], max_gpu: int) -> None:
        self.levels = tuple(levels)
        self.rates = dict(rates)
        self.max_gpu = max_gpu
        self._fit: list[int] = []

    def rate(self, gpus: int) -> float:
        try:
            return self.rates[gpus]
        except KeyError:
            raise SimulationError(
                f"no throughput for {gpus} GPUs (levels {self.levels}); upstream aborts on "
                "this lookup"
            ) from None

    def next_level(self, gpus: int) -> int:
        """Smallest level above `gpus`; `gpus` itself if there is none or it is not a level
        (0 counts as "below every level")."""
        found = gpus == 0
        for level in self.levels:
            if level == gpus:
                found = True
            elif found:
                return level
        return gpus

    def fit(self, free: int) -> int:
        """Largest level <= `free` (0 if none)."""
        return self.fit_table(free)[free]

    def fit_table(self, upto: int) -> list[int]:
        """`fit` for 0..upto (at least) as a list, for the planner's inner loops.

        Entry g is the last of the leading levels that are all <= g (the levels in column
        order), so it changes only where g reaches the next level: the table is filled a run
        of equal entries at a time.
        """
        table = self._fit
        levels = self.levels
        g = len(table)
        while g <= upto:
            best = 0
            while best < len(levels) and levels[best] <= g:
                best += 1
            stop = min(levels[best], upto + 1) if best < len(levels) else upto + 1
            table.extend([levels[best - 1] if best else 0] * (stop - g))
            g = stop
        return table


class Plan:
    """Planner output: the job's plan, its ends, and the timeline with the plan committed.

    `alloc` and `timeline` are compressed (2.4) on first access (most tentative plans are only
    priced, never adopted). `gpu_time` is upstream's GPU-seconds of the raw plan up to `end`;
    the marginal of 3.1.4 is a difference of these. `meets_deadline` = real_end <= deadline, the
    verdict admission control and EF's bookkeeping use. `branch` says which path produced the
    plan: "fixed" (fits in the reserved first interval), "share" (a level meets the deadline),
    "late" (failure, finishes inside the timeline) or "overflow" (failure, runs past the last
    breakpoint).
    """

    __slots__ = (
        "_alloc",
        "_raw_alloc",
        "_raw_timeline",
        "_timeline",
        "branch",
        "end",
        "gpu_time",
        "meets_deadline",
        "real_end",
    )

    def __init__(
        self,
        raw_alloc: Allocation,
        end: float,
        real_end: float,
        raw_timeline: Timeline,
        deadline: float,
        branch: str,
    ) -> None:
        self._raw_alloc = raw_alloc
        self._raw_timeline = raw_timeline
        self._alloc: Allocation | None = None
        self._timeline: Timeline | None = None
        self.end = end
        """Planned end aligned to the slot grid of the planning time."""
        self.real_end = real_end
        """Unaligned planned end (upstream `real_end_time`)."""
        self.gpu_time = allocation_gpu_time(raw_alloc, end)
        self.meets_deadline = real_end <= deadline
        self.branch = branch

    @property
    def alloc(self) -> Allocation:
        if self._alloc is None:
            self._alloc = merge_runs(self._raw_alloc)
        return self._alloc

    @property
    def timeline(self) -> Timeline:
        if self._timeline is None:
            self._timeline = merge_runs(self._raw_timeline)
        return self._timeline

    def __repr__(self) -> str:
        return (
            f"Plan(alloc={self.alloc}, end={self.end}, real_end={self.real_end}, "
            f"branch={self.branch!r}, timeline={self.timeline})"
        )


def allocation_gpu_time(alloc: Mapping[float, int], end: float) -> float:
    """Sum of GPUs x segment length in insertion order, the last segment running to `end`.

    quirk: the segment holding `end` counts up to the next key, not up to `end` (upstream).
    """
    total = 0.0
    last_t: float | None = None
    last_g = 0
    for t, g in alloc.items():
        if last_t is not None:
            total += last_g * (t - last_t)
        last_t = t
        last_g = g
    if last_t is None:
        return 0.0
    return total + last_g * (end - last_t)


def value_at(timeline: Mapping[float, int], t: float, default: int) -> int:
    """Free GPUs in force at `t` (the last key <= t), `default` before the first key."""
    if t in timeline:
        return timeline[t]
    value = default
    for k, v in timeline.items():
        if k <= t:
            value = v
    return value


def _sorted(mapping: dict[float, int]) -> dict[float, int]:
    """The mapping with ascending keys (the same object when it already is)."""
    previous: float | None = None
    for t in mapping:
        if previous is not None and t < previous:
            return dict(sorted(mapping.items()))
        previous = t
    return mapping


def _insert(mapping: dict[float, int], key: float, value: int) -> dict[float, int]:
    """Set `key` and keep the keys ascending (upstream re-sorts after each insertion)."""
    if key in mapping or not mapping or key > next(reversed(mapping)):
        mapping[key] = value
        return mapping
    mapping[key] = value
    return dict(sorted(mapping.items()))


def _take(nf: Timeline, t: float, gpus: int) -> None:
    nf[t] -= gpus
    if nf[t] < 0:
        raise SimulationError(f"plan overdraws the free-GPU timeline at {t} (upstream asserts)")


def timeline_without(
    timeline: Timeline,
    alloc: Mapping[float, int],
    end: float,
    num_gpus: int,
    until: float | None = None,
) -> Timeline:
    """The timeline with a job's own plan given back on [plan start, end), compressed (3.1.4).

    The job's end and its plan keys become breakpoints (with the value in force there). With
    `until`, the result may stop after its first key beyond `until` (what a pricing up to an
    aligned deadline reads).
    """
    keys = list(alloc)
    if keys != sorted(keys):
        return _timeline_without_literal(timeline, alloc, end, num_gpus)
    tk = list(timeline)
    # an ascending timeline (the usual case) answers "value in force at t" by bisection
    tv = list(timeline.values()) if tk == sorted(tk) else None
    added: dict[float, int] = {}
    if end not in timeline:
        before: int | None = None
        if tv is not None:
            j = bisect_left(tk, end)
            before = tv[j - 1] if j else None
        else:
            for t, v in timeline.items():
                if t >= end:
                    break
                before = v
        if before is None:
            raise SimulationError(f"plan end {end} precedes the timeline (upstream crashes)")
        added[end] = before
    for ta in keys:
        if ta not in timeline and ta not in added:
            if tv is not None:
                j = bisect_right(tk, ta)
                added[ta] = tv[j - 1] if j else num_gpus
            else:
                added[ta] = value_at(timeline, ta, num_gpus)
    items = sorted([*timeline.items(), *added.items()]) if added else timeline.items()
    # every key in [first plan key, end) gets back the GPUs the plan holds there: the same
    # result as upstream's one delta pass per plan key when the plan is ascending
    merged: Timeline = {}
    last: int | None = None
    i = 0
    held = 0
    n_keys = len(keys)
    # the next plan key to pass (inf once all are passed) and the earliest time to stop at
    next_key = keys[0] if n_keys else math.inf
    stop_after = math.inf if until is None else until
    for t, v in items:
        if t < end:
            if next_key <= t:
                while i < n_keys and keys[i] <= t:
                    held = alloc[keys[i]]
                    i += 1
                next_key = keys[i] if i < n_keys else math.inf
            if i:
                v += held
        if v > num_gpus:
            raise SimulationError(f"giving a plan back leaves {v} free GPUs at {t} (> cluster)")
        if v != last:
            merged[t] = v
            last = v
            if t > stop_after:
                break
    return merged


def is_ascending(mapping: Mapping[float, int]) -> bool:
    """Keys strictly ascending in insertion order (keys are distinct, so sorted = ascending)."""
    keys = list(mapping)
    return keys == sorted(keys)


def first_key_after(timeline: Mapping[float, int], t0: float) -> float | None:
    """The first key after those <= t0, in insertion order (the planner's `nxt`)."""
    for t in timeline:
        if t > t0:
            return t
    return None


class TimelineEdit:
    """Where two timelines (read as step functions from their common first key) differ:
    ascending, disjoint intervals [a, b). `touches(lo, hi)` says whether any of them meets
    the closed interval [lo, hi]. Makes no claim (touches everything) when the timelines are
    not ascending or start at different keys."""

    __slots__ = ("_ends", "_starts", "everywhere")

    def __init__(self, old: Timeline, new: Timeline) -> None:
        self._starts: list[float] = []
        self._ends: list[float] = []
        ka = list(old)
        kb = list(new)
        self.everywhere = not ka or not kb or ka[0] != kb[0] or ka != sorted(ka) or kb != sorted(kb)
        if self.everywhere:
            return
        i = j = 0
        va = vb = 0
        na, nb = len(ka), len(kb)
        open_at: float | None = None
        while i < na or j < nb:
            t = ka[i] if i < na else math.inf
            if j < nb and kb[j] < t:
                t = kb[j]
            if i < na and ka[i] == t:
                va = old[t]
                i += 1
            if j < nb and kb[j] == t:
                vb = new[t]
                j += 1
            if va != vb and open_at is None:
                open_at = t
            elif va == vb and open_at is not None:
                self._starts.append(open_at)
                self._ends.append(t)
                open_at = None
        if open_at is not None:
            self._starts.append(open_at)
            self._ends.append(math.inf)

    def touches(self, lo: float, hi: float) -> bool:
        if self.everywhere:
            return True
        k = bisect_right(self._ends, lo)  # first difference ending after lo
        return k < len(self._starts) and self._starts[k] <= hi

    def windows(self, lo: float, hi: float) -> list[tuple[float, float]]:
        """The differences [a, b) that meet [lo, hi), clipped to it (everything if `everywhere`)."""
        if self.everywhere:
            return [(lo, hi)]
        found = []
        for k in range(bisect_right(self._ends, lo), len(self._starts)):
            a = self._starts[k]
            if a >= hi:
                break
            found.append((max(a, lo), min(self._ends[k], hi)))
        return found

    def near(self, lo: float, hi: float) -> bool:
        """Whether a difference or one of its ends lies in [lo, hi]: the keys of a compressed
        timeline can change only there."""
        if self.everywhere:
            return True
        k = bisect_left(self._ends, lo)  # first difference ending at or after lo
        return k < len(self._starts) and self._starts[k] <= hi


def first_break_given_back(
    timeline: Timeline,
    alloc: Mapping[float, int],
    end: float,
    lists: tuple[list[float], list[int]] | None = None,
) -> tuple[bool, float | None]:
    """`first_key_after(timeline_without(timeline, alloc, end, n), start)` without building it.

    Returns (applies, key): applies is False where the shortcut makes no claim (plan keys not
    ascending, or a plan key or the end before the timeline's first key); key is None when
    the given-back timeline has a single key. Walks only up to that first breakpoint. `lists`
    are the timeline's keys and values where the caller has them (saves copying the keys).
    """
    if lists is None:
        tk = list(timeline)
        tv = list(timeline.values())
    else:
        tk, tv = lists
    ak = list(alloc)
    if not tk or not ak or not is_ascending(alloc):
        return False, None
    t0 = tk[0]
    if ak[0] < t0 or end < t0:
        return False, None
    inf = math.inf
    nt, na = len(tk), len(ak)
    i = j = 0
    free = held = 0
    end_pending = True
    first: int | None = None
    while True:
        t = tk[i] if i < nt else inf
        if j < na and ak[j] < t:
            t = ak[j]
        if end_pending and end < t:
            t = end
        if t == inf:
            return True, None
        while i < nt and tk[i] <= t:
            free = tv[i]
            i += 1
        while j < na and ak[j] <= t:
            held = alloc[ak[j]]
            j += 1
        if end_pending and end <= t:
            end_pending = False
        value = free + held if t < end else free
        if first is None:
            first = value
        elif value != first:
            return True, t


def _timeline_without_literal(
    timeline: Timeline, alloc: Mapping[float, int], end: float, num_gpus: int
) -> Timeline:
    """Upstream's delta passes, one per plan key in the plan's own (unsorted) order."""
    tmp = dict(timeline)
    if end not in tmp:
        before: int | None = None
        for t, v in tmp.items():
            if t >= end:
                break
            before = v
        if before is None:
            raise SimulationError(f"plan end {end} precedes the timeline (upstream crashes)")
        tmp = _insert(tmp, end, before)
    previous = 0
    for ta, ga in alloc.items():
        if ta not in tmp:
            tmp = _insert(tmp, ta, value_at(tmp, ta, num_gpus))
        delta = ga - previous
        for t in tmp:
            if t < ta:
                continue
            if t >= end:
                break
            tmp[t] += delta
        previous = ga
    for t, v in tmp.items():
        if v > num_gpus:
            raise SimulationError(f"giving a plan back leaves {v} free GPUs at {t} (> cluster)")
    return merge_runs(tmp)


def plan_job(
    curve: ScalingCurve,
    iter_left: float,
    deadline: float,
    t0: float,
    timeline: Timeline,
    num_gpus: int,
    slot: int,
    fixed_gpus: int | None = None,
) -> Plan:
    """Plan one job from `t0` on `timeline` (not modified).

    See docs/policies/elasticflow.md#planner.

    With `fixed_gpus` this is `plan_with_fixed_start`: exactly that many GPUs on [t0, next
    breakpoint), then the normal planner from that breakpoint.
    """
    if iter_left <= 0:
        raise SimulationError(f"planning a job with {iter_left} iterations left (upstream asserts)")
    if t0 not in timeline:
        raise SimulationError(f"planning time {t0} is not a key of the free-GPU timeline")
    try:
        return _plan(curve, iter_left, deadline, t0, timeline, num_gpus, slot, fixed_gpus)
    except KeyError as err:
        raise SimulationError(
            f"planner lookup of {err} failed (upstream aborts on the same lookup)"
        ) from None


def _plan(
    curve: ScalingCurve,
    iter_left: float,
    deadline: float,
    t0: float,
    timeline: Timeline,
    num_gpus: int,
    slot: int,
    fixed_gpus: int | None,
) -> Plan:
    d = deadline
    rates = curve.rates
    fits = curve.fit_table(num_gpus)
    iters = iter_left
    alloc: Allocation = {t0: 0}
    nf: Timeline = dict(timeline)
    d_al = align(t0, d, slot)
    # upstream's function-wide `last_event_gpu`: some branches read a value an earlier one left
    carried: int | None = None
    if d_al >= t0 and d_al not in nf:
        for t, v in nf.items():
            if t >= d_al:
                break
            carried = v
        if carried is None:
            raise SimulationError("aligned deadline precedes the timeline")
        nf = _insert(nf, d_al, carried)
    start = t0

    if fixed_gpus is not None:
        reserved = _reserve_fixed(
            rates, iters, d, d_al, t0, fixed_gpus, alloc, nf, timeline, slot, carried
        )
        if isinstance(reserved, Plan):
            return reserved
        iters, start, carried = reserved

    quota = curve.next_level(0)
    if quota <= num_gpus and quota <= curve.max_gpu:
        for t in nf:
            if t < d_al and t not in alloc:
                alloc[t] = 0
    intervals = _intervals(list(nf), nf, start, d, d_al, fits)
    split, quota, last_quota = _split_level(curve, intervals, iters, num_gpus, quota)
    if split is not None:
        return _commit_share(
            curve, iters, d, d_al, start, split, quota, last_quota, alloc, nf, timeline,
            num_gpus, slot,
        )  # fmt: skip
    return _commit_failure(
        curve, iters, d, d_al, t0, start, last_quota, alloc, nf, timeline, num_gpus, slot,
        carried, fixed_gpus,
    )  # fmt: skip


def _reserve_fixed(
    rates: Mapping[int, float],
    iters: float,
    d: float,
    d_al: float,
    t0: float,
    fixed_gpus: int,
    alloc: Allocation,
    nf: Timeline,
    timeline: Timeline,
    slot: int,
    carried: int | None,
) -> Plan | tuple[float, float, int | None]:
    """The fixed-start variant's reserved first interval: the plan if the job finishes inside
    it, else (work left, the next breakpoint to plan from, the carried timeline value)."""
    g = fixed_gpus
    available = nf[t0]
    if g > available:
        raise SimulationError(f"fixed start with {g} GPUs but only {available} free at {t0}")
    nxt: float | None = None
    for t, v in timeline.items():
        if t < t0:
            available = v
            del nf[t]
            continue
        if t == t0:
            available = v
            continue
        nxt = t
        break
    if nxt is None:
        nxt = d_al
    alloc[t0] = g
    g_rate = rates[g]
    real_end: float = math.ceil(t0 + iters / g_rate)
    end = align(t0, real_end, slot)
    if nxt >= end and d >= real_end:
        for t in timeline:
            if t < t0:
                continue
            if t < end:
                carried = nf[t]
                _take(nf, t, g)
        if t0 != end:
            nf[t0] = available - g
        if end not in timeline:
            if carried is None:
                raise SimulationError("no breakpoint before the plan end (upstream crashes)")
            nf = _insert(nf, end, carried)
        return Plan(alloc, end, real_end, nf, d, "fixed")
    # quirk: a job that would finish inside the reserved interval but after its deadline
    # lands here too. If that interval ends at the aligned deadline it gets a failure plan;
    # if it ends later, its remaining work becomes <= 0 and the failure branch asserts
    # upstream (SimulationError here). It cannot "succeed at once" (docs/policies/elasticflow.md
    # #planner): no breakpoint lies between the next one and the aligned deadline.
    span = (d - t0) if nxt == d_al else (nxt - t0)
    iters -= span * g_rate
    _take(nf, t0, g)
    start = nxt
    alloc[start] = 0
    return iters, start, carried


def _intervals(
    keys: list[float],
    free: Mapping[float, int],
    start: float,
    d: float,
    d_al: float,
    fits: list[int],
) -> list[tuple[float, int, float]]:
    """Intervals [p, next key) between the planning start and the aligned deadline, latest
    first, with the most the free GPUs allow and their length; the last one is measured to the
    REAL deadline. Neither depends on the level tried, so they are collected once."""
    intervals: list[tuple[float, int, float]] = []
    seg_end = d_al
    for p in reversed(keys):
        if p >= d_al:
            continue
        if p < start:
            break
        most = fits[free[p]]
        if most:
            intervals.append((p, most, (d - p) if seg_end == d_al else (seg_end - p)))
        seg_end = p
    return intervals


def _split_level(
    curve: ScalingCurve,
    intervals: list[tuple[float, int, float]],
    iters: float,
    num_gpus: int,
    quota: int,
) -> tuple[float | None, int, int]:
    """(split, quota, last_quota): the lowest level from `quota` up that finishes by the
    deadline when run from the split point on; split None when none does (last_quota is then
    the largest level tried). A missing rate raises KeyError."""
    rates = curve.rates
    last_quota = 0
    while quota <= num_gpus and quota <= curve.max_gpu:
        acc = 0.0
        for p, most, span in intervals:
            acc += span * rates[most if most < quota else quota]
            if acc >= iters:
                return p, quota, last_quota
        last_quota = quota
        quota = curve.next_level(quota)
        if quota == last_quota:
            break
    return None, quota, last_quota


def _share_walk(
    curve: ScalingCurve,
    iters: float,
    d: float,
    d_al: float,
    start: float,
    split: float,
    quota: int,
    last_quota: int,
    alloc: Allocation,
    keys: Iterable[float],
    free: Mapping[float, int],
    num_gpus: int,
    slot: int,
) -> tuple[float, float, list[tuple[float, int]]]:
    """The forward walk of a successful level: fills `alloc`, returns (end, real_end, GPUs taken
    per interval start). Only the timeline's own values are read: the commit draws an interval
    down only once the walk has left it."""
    rates = curve.rates
    fits = curve.fit_table(num_gpus)
    taken: list[tuple[float, int]] = []
    seg: float | None = None
    gpus = 0
    for t in keys:
        if t > d_al:
            break
        if t < start:
            continue
        if seg is not None:
            alloc[seg] = gpus
            if gpus:
                taken.append((seg, gpus))
                span = (d - seg) if t == d_al else (t - seg)
                its = span * rates[gpus]
                if seg < split:
                    if its >= iters:
                        raise SimulationError(
                            "job finishes before its split point (upstream asserts)"
                        )
                    iters -= its
                elif its < iters:
                    iters -= its
                else:
                    left = math.ceil(iters / rates[gpus])
                    end = seg + align(0, left, slot)
                    if end > t:
                        raise SimulationError(
                            f"planned end {end} passes breakpoint {t} (upstream asserts)"
                        )
                    return end, seg + left, taken
        # the previous level before the split point, `quota` from it on, capped by what is free
        seg = t
        gpus = fits[free[t]]
        cap = quota if t >= split else last_quota
        if gpus > cap:
            gpus = cap
    if seg is None:
        raise SimulationError("no interval to plan in (upstream crashes)")
    alloc[seg] = gpus
    taken.append((seg, gpus))
    left = math.ceil(iters / rates[gpus])
    return seg + align(0, left, slot), seg + left, taken


def _commit_share(
    curve: ScalingCurve,
    iters: float,
    d: float,
    d_al: float,
    start: float,
    split: float,
    quota: int,
    last_quota: int,
    alloc: Allocation,
    nf: Timeline,
    timeline: Timeline,
    num_gpus: int,
    slot: int,
) -> Plan:
    """Success at level `quota`: the previous level before `split`, `quota` from it on."""
    end, real_end, taken = _share_walk(
        curve, iters, d, d_al, start, split, quota, last_quota, alloc, list(nf), nf, num_gpus,
        slot,
    )  # fmt: skip
    for seg, gpus in taken:
        _take(nf, seg, gpus)
    alloc = _sorted(alloc)
    # the job gives its GPUs back at `end`: the original value in force just before it
    release = num_gpus
    for t, v in timeline.items():
        if t < start:
            continue
        if t < end:
            release = v
    if end not in timeline:
        nf = _insert(nf, end, release)
    return Plan(alloc, end, real_end, nf, d, "share")


def _commit_failure(
    curve: ScalingCurve,
    iters: float,
    d: float,
    d_al: float,
    t0: float,
    start: float,
    last_quota: int,
    alloc: Allocation,
    nf: Timeline,
    timeline: Timeline,
    num_gpus: int,
    slot: int,
    carried: int | None,
    fixed_gpus: int | None,
) -> Plan:
    """No level meets the deadline: the largest level tried up to it, whatever fits after it,
    and past the last breakpoint the whole cluster (docs/policies/elasticflow.md#planner)."""
    iters = _fill_to_deadline(curve, iters, d, d_al, start, last_quota, alloc, nf)
    late = _fill_after_deadline(
        curve, iters, d, d_al, t0, start, alloc, nf, timeline, slot, carried
    )
    if isinstance(late, Plan):
        return late
    iters, seg = late
    return _overflow(curve, iters, d, t0, seg, alloc, nf, num_gpus, slot, fixed_gpus)


def _fill_to_deadline(
    curve: ScalingCurve,
    iters: float,
    d: float,
    d_al: float,
    start: float,
    last_quota: int,
    alloc: Allocation,
    nf: Timeline,
) -> float:
    """Up to the aligned deadline, the largest level tried; returns the work left."""
    rate = curve.rate
    fit = curve.fit
    seg: float | None = None
    gpus = 0
    for t in list(nf):
        if t > d_al:
            break
        if t < start:
            continue
        if seg is None:
            seg, gpus = t, min(last_quota, fit(nf[t]))
            continue
        alloc[seg] = gpus
        _take(nf, seg, gpus)
        if gpus == 0:
            seg, gpus = t, min(last_quota, fit(nf[t]))
            continue
        span = (d - seg) if t == d_al else (t - seg)
        its = span * rate(gpus)
        if its >= iters:
            raise SimulationError("a failed plan finishes before its deadline (upstream asserts)")
        iters -= its
        seg, gpus = t, min(last_quota, fit(nf[t]))
    if iters <= 0:
        raise SimulationError("a failed plan has no work left (upstream asserts)")
    return iters


def _fill_after_deadline(
    curve: ScalingCurve,
    iters: float,
    d: float,
    d_al: float,
    t0: float,
    start: float,
    alloc: Allocation,
    nf: Timeline,
    timeline: Timeline,
    slot: int,
    carried: int | None,
) -> Plan | tuple[float, float]:
    """After the deadline, whatever the timeline allows, interval by interval: the plan if the
    job finishes before the last breakpoint, else (work left, last breakpoint)."""
    rate = curve.rate
    fit = curve.fit
    seg = max(d_al, start)
    for t in list(nf):
        if t <= d_al:
            continue
        if seg not in nf:
            raise SimulationError(f"no breakpoint at {seg} (upstream crashes)")
        q = min(fit(nf[seg]), curve.max_gpu)
        if q == 0:
            alloc[seg] = 0
            seg = t
            continue
        alloc[seg] = q
        # quirk: when keys before `seg` remain (fixed start past the deadline) this span is
        # negative; kept as upstream computes it
        its = (t - seg) * rate(q)
        if its >= iters:
            real_end: float = math.ceil(seg + iters / rate(q))
            end = align(t0, real_end, slot)
            if end > t:
                raise SimulationError(f"planned end {end} passes breakpoint {t} (upstream asserts)")
            for t1 in list(nf):
                if t1 < d_al:
                    continue
                if t1 < end and t1 in timeline:
                    carried = timeline[t1]
                if seg <= t1 < end:
                    _take(nf, t1, q)
            if carried is None:
                raise SimulationError("no value before the plan end (upstream crashes)")
            # quirk: the start key gets (original value before `end`) - q rather than its own
            # value - q; they differ only if it was drawn down before (a fixed start's reserved
            # interval revisited past the deadline)
            nf[seg] = carried - q
            if nf[seg] < 0:
                raise SimulationError(f"plan overdraws the timeline at {seg} (upstream asserts)")
            if end not in timeline:
                nf = _insert(nf, end, carried)
            # upstream leaves this plan unsorted (insertion order is ascending in practice)
            return Plan(alloc, end, real_end, nf, d, "late")
        iters -= its
        for t1 in timeline:
            if t1 < seg:
                if t1 not in nf:
                    raise SimulationError(f"breakpoint {t1} vanished (upstream crashes)")
                carried = nf[t1]
        for t1 in nf:
            if seg <= t1 < t:
                _take(nf, t1, q)
        seg = t
    return iters, seg


def _overflow(
    curve: ScalingCurve,
    iters: float,
    d: float,
    t0: float,
    seg: float,
    alloc: Allocation,
    nf: Timeline,
    num_gpus: int,
    slot: int,
    fixed_gpus: int | None,
) -> Plan:
    """Past the last breakpoint the whole cluster is assumed free."""
    if iters <= 0:
        raise SimulationError("a failed plan has no work left (upstream asserts)")
    q = min(num_gpus, curve.max_gpu)
    if fixed_gpus is not None:
        if fixed_gpus > q:
            raise SimulationError(f"fixed start with {fixed_gpus} GPUs above the cap {q}")
        q = fixed_gpus
    alloc[seg] = q
    alloc = _sorted(alloc)
    real_end = math.ceil(seg + iters / curve.rate(q))
    end = align(t0, real_end, slot)
    if end <= d:
        raise SimulationError("a failed plan meets its deadline (upstream asserts)")
    nf[seg] = num_gpus - q
    nf = _insert(nf, end, num_gpus)
    return Plan(alloc, end, real_end, nf, d, "overflow")


def price_fixed_start(
    curve: ScalingCurve,
    iter_left: float,
    deadline: float,
    t0: float,
    timeline: Timeline,
    num_gpus: int,
    slot: int,
    gpus: int,
) -> tuple[str, float, float] | None:
    """(branch, gpu_time, end) of `plan_with_fixed_start` when it ends in the "fixed" or
    "share" branch, computed without building the plan or its timeline; None otherwise.

    For pricing only (3.1.4): the same walk as `_plan`/`_commit_share`, reading the free counts
    that they read (the timeline's own values: the planner only edits intervals it has left
    behind) and summing `allocation_gpu_time` over the same keys in the same order, so the
    result is bit-identical. Every case that is not a plain success (a failure plan, any
    condition the planner raises on, keys before t0 or out of order) returns None: the caller
    then runs the planner itself.
    """
    keys = list(timeline)
    if iter_left <= 0 or not keys or keys[0] != t0 or keys != sorted(keys):
        return None
    rates = curve.rates
    g_rate = rates.get(gpus)
    if g_rate is None or gpus > timeline[t0]:
        return None
    d = deadline
    d_al = align(t0, d, slot)
    nxt = keys[1] if len(keys) > 1 else d_al
    real_end: float = math.ceil(t0 + iter_left / g_rate)
    end = align(t0, real_end, slot)
    if nxt >= end and d >= real_end:
        return "fixed", allocation_gpu_time({t0: gpus}, end), end
    if d_al < t0:
        return None
    # the planner's keys: the timeline's plus the aligned deadline (valued as the interval
    # it falls in), ascending
    free_at = timeline
    if d_al not in timeline:
        free_at = dict(timeline)
        pos = bisect_left(keys, d_al)
        free_at[d_al] = timeline[keys[pos - 1]]
        keys.insert(pos, d_al)
    span0 = (d - t0) if nxt == d_al else (nxt - t0)
    iters = iter_left - span0 * g_rate
    start = nxt
    alloc: Allocation = {t0: gpus, start: 0}
    quota = curve.next_level(0)
    if quota <= num_gpus and quota <= curve.max_gpu:
        for t in keys:
            if t >= d_al:
                break
            if t not in alloc:
                alloc[t] = 0
    fits = curve.fit_table(num_gpus)
    intervals = _intervals(keys, free_at, start, d, d_al, fits)
    try:
        split, quota, last_quota = _split_level(curve, intervals, iters, num_gpus, quota)
    except KeyError:
        return None
    if split is None:
        return None
    try:
        plan_end = _share_walk(
            curve, iters, d, d_al, start, split, quota, last_quota, alloc, keys, free_at,
            num_gpus, slot,
        )[0]  # fmt: skip
    except (KeyError, SimulationError):
        return None
    return "share", allocation_gpu_time(_sorted(alloc), plan_end), plan_end


def plan_with_fixed_start(
    curve: ScalingCurve,
    iter_left: float,
    deadline: float,
    t0: float,
    timeline: Timeline,
    num_gpus: int,
    slot: int,
    gpus: int,
) -> Plan:
    """`plan_job` with exactly `gpus` GPUs reserved on the first interval (used by 3.1.4)."""
    return plan_job(curve, iter_left, deadline, t0, timeline, num_gpus, slot, fixed_gpus=gpus)
