"""Bookkeeping that makes ElasticFlow's leftover pass incremental
(docs/policies/elasticflow.md#leftover).

The plain pass re-prices every growable job after each one-level grant and stable-sorts the
jobs by price, descending. `PriceIndex` finds, with array operations over all jobs at once,
the prices a grant's timeline edit provably leaves as they are (exactly the cases where the
plain pass's re-pricing would keep them through `marginal_holds`), so only the others are
re-priced. `GrantOrder` gives the order those repeated stable sorts produce without sorting:
a job whose price changes moves before or after the jobs already holding its new price,
depending on whether it came from above or below.
"""

from __future__ import annotations

import heapq
import math
from bisect import bisect_left, bisect_right
from collections.abc import Mapping, Sequence
from itertools import pairwise
from typing import Protocol

import numpy as np
import numpy.typing as npt

from reprise.errors import SimulationError
from reprise.policies.elasticflow.planner import TimelineEdit
from reprise.policies.elasticflow.pricing import SortedTimeline

PENDING = 0
"""A job without GPUs: its price is +inf for as long as its next level fits."""
ALWAYS = 1
"""A price the pass re-prices after every grant (no reuse rule applies to it)."""
FIXED = 2
"""A "fixed" tentative plan: it holds while the given-back timeline has no breakpoint before
its end."""
CERT = 3
"""A certified "share" price (`pricing.Certificate`)."""

_FloatArray = npt.NDArray[np.float64]
_IntArray = npt.NDArray[np.int64]


class PricedJob(Protocol):
    """What the index reads of a job (`policy.EfJob`)."""

    gpus: int
    next_gpus: int
    alloc: dict[float, int]
    end_time: float
    price_break: float | None
    price_fixed_end: float | None

    @property
    def price_cert(self) -> tuple[int, float, float, float, float] | None: ...


def _held(alloc: Mapping[float, int], end: float, t: float) -> int:
    """GPUs the plan holds at `t` (0 from its end on and before its first key)."""
    if t >= end:
        return 0
    held = 0
    for k, g in alloc.items():
        if k > t:
            break
        held = g
    return held


def _applies(alloc: Mapping[float, int], end: float, first_key: float) -> bool:
    """Where `planner.first_break_given_back` makes a claim: the plan's keys ascend and
    neither they nor its end precede the timeline's first key."""
    keys = list(alloc)
    if not keys or keys[0] < first_key or end < first_key:
        return False
    return all(a < b for a, b in pairwise(keys))


class PriceIndex:
    """Per-job arrays of what each price read, indexed like the pass's job list."""

    def __init__(self, jobs: Sequence[PricedJob]) -> None:
        n = len(jobs)
        self.need: _IntArray = np.array([j.next_gpus - j.gpus for j in jobs], dtype=np.int64)
        self.kind = np.full(n, ALWAYS, dtype=np.int8)
        self.brk: _FloatArray = np.zeros(n)
        self.d_al: _FloatArray = np.zeros(n)
        self.fixed_end: _FloatArray = np.full(n, math.inf)
        self.jump_base: _IntArray = np.zeros(n, dtype=np.int64)
        """GPUs the job holds at its first breakpoint minus those it holds now."""
        self.level: _IntArray = np.zeros(n, dtype=np.int64)
        self.windows: _FloatArray = np.zeros((4, n))
        """The certificate's split window (rows 0, 1) and end window (rows 2, 3)."""

    def refresh(self, i: int, job: PricedJob, first_key: float, now: float, d_al: float) -> None:
        """Record what job `i`'s current price read (after it was priced or kept)."""
        self.need[i] = job.next_gpus - job.gpus
        brk = job.price_break
        if job.gpus == 0:
            self.kind[i] = PENDING
        elif brk is None or first_key != now or not _applies(job.alloc, job.end_time, first_key):
            self.kind[i] = ALWAYS
        elif job.price_fixed_end is not None:
            self.kind[i] = FIXED
            self.fixed_end[i] = job.price_fixed_end
        elif job.price_cert is not None:
            self.kind[i] = CERT
            level, split_lo, split_hi, end_lo, end_hi = job.price_cert
            self.brk[i] = brk
            self.d_al[i] = d_al
            self.level[i] = level
            self.windows[:, i] = (split_lo, split_hi, end_lo, end_hi)
            alloc, end = job.alloc, job.end_time
            self.jump_base[i] = _held(alloc, end, brk) - _held(alloc, end, now)
        else:
            self.kind[i] = ALWAYS

    def invalidate(self, i: int, job: PricedJob) -> None:
        """Job `i` was granted: its price must be computed afresh."""
        self.need[i] = job.next_gpus - job.gpus
        self.kind[i] = ALWAYS

    def eligible(self, free: int) -> npt.NDArray[np.bool_]:
        """Jobs the plain pass would price with `free` GPUs left (their next level fits)."""
        need = self.need
        return (need > 0) & (need <= free)

    def kept(self, edit: TimelineEdit, timeline: SortedTimeline) -> npt.NDArray[np.bool_]:
        """Jobs whose price the plain pass would keep after `edit` (`marginal_holds` true),
        given that it held before the edit; `timeline` is the timeline after it.

        A fixed plan holds while the edit shifts the timeline by one constant up to the plan's
        end: the given-back timeline then gains no breakpoint before it. A certified price
        whose first breakpoint is where that shift ends (the common case: the first key after
        now) holds where the step there survives the shift and `pricing.still_holds` passes,
        both evaluated here for all such jobs at once. Other certified prices are left to
        `marginal_holds` (False here).
        """
        kept = np.zeros(len(self.kind), dtype=np.bool_)
        if edit.everywhere:
            return kept
        steady = edit.steady_until
        kept |= (self.kind == FIXED) & (self.fixed_end <= steady)
        keys_list = timeline.keys
        if keys_list is None or not timeline.integral or steady == math.inf:
            return kept
        sel = np.flatnonzero((self.kind == CERT) & (self.brk == steady))
        if not len(sel):
            return kept
        values_list = timeline.values
        at_steady = values_list[bisect_right(keys_list, steady) - 1]
        # the given-back timeline still steps at the breakpoint (the step moves by the shift)
        good = self.jump_base[sel] != values_list[0] - at_steady
        starts_list, ends_list = edit.spans
        starts = np.array([*starts_list, math.inf])
        ends = np.array(ends_list, dtype=np.float64)
        for lo_row, hi_row in ((0, 1), (2, 3)):
            k = np.searchsorted(ends, self.windows[lo_row, sel], "left")
            good &= starts[k] > self.windows[hi_row, sel]
        d_al = self.d_al[sel]
        level = self.level[sel]
        keys: _FloatArray | None = None
        for a, b in zip(starts_list, ends_list, strict=True):
            lo = max(a, steady)
            if lo >= b:
                continue
            # fewest free GPUs on [lo, min(b, d_al)) for each job: a prefix minimum from lo
            first = bisect_right(keys_list, lo) - 1
            last = bisect_left(keys_list, b, first + 1)
            if keys is None:
                keys = np.array(keys_list, dtype=np.float64)
            lowest = np.minimum.accumulate(np.array(values_list[first:last], dtype=np.int64))
            upto = np.minimum(np.searchsorted(keys, d_al, "left"), last) - first
            reached = d_al > lo
            fewest = lowest[np.maximum(upto, 1) - 1]
            good &= ~reached | (fewest >= level)
        kept[sel[good]] = True
        return kept


class GrantOrder:
    """The plain pass's job order, sorted by price descending after every re-pricing with a
    stable sort, and the first job in it that can grow.

    A stable sort orders jobs with equal prices as the previous order did, so the order is
    by (-price, tie) where each price keeps its own tie counters: a job whose price changes
    from above its new price gets a tie below every holder of that price, from below one
    above them, movers among themselves in their previous order."""

    def __init__(self, prices: Sequence[float]) -> None:
        self.price = list(prices)
        self.tie = list(range(len(prices)))
        self.bounds: dict[float, list[int]] = {}
        for i, p in enumerate(self.price):
            if p != p:
                raise SimulationError("a NaN marginal price (the plain sort order is undefined)")
            bound = self.bounds.get(p)
            if bound is None:
                self.bounds[p] = [i, i]
            else:
                bound[1] = i
        self.heap = [(-p, i, i) for i, p in enumerate(self.price) if p > -math.inf]
        heapq.heapify(self.heap)

    def move(self, changes: list[tuple[int, float]]) -> None:
        """Jobs take new prices (each different from its old one); one re-sort's worth."""
        price, tie = self.price, self.tie
        changes.sort(key=lambda c: (-price[c[0]], tie[c[0]]))
        above: dict[float, list[int]] = {}
        below: dict[float, list[int]] = {}
        for i, new in changes:
            if new != new:
                raise SimulationError("a NaN marginal price (the plain sort order is undefined)")
            (above if price[i] > new else below).setdefault(new, []).append(i)
        for p, movers in above.items():
            bound = self.bounds.setdefault(p, [0, -1])
            base = bound[0] - len(movers)
            bound[0] = base
            for n, i in enumerate(movers):
                price[i], tie[i] = p, base + n
        for p, movers in below.items():
            bound = self.bounds.setdefault(p, [0, -1])
            for i in movers:
                bound[1] += 1
                price[i], tie[i] = p, bound[1]
        for i, _ in changes:
            if price[i] > -math.inf:
                heapq.heappush(self.heap, (-price[i], tie[i], i))

    def first(self, need: _IntArray, free: int) -> int | None:
        """The first job in the order whose next level fits in `free` GPUs."""
        heap, price, tie = self.heap, self.price, self.tie
        while heap:
            neg, t, i = heap[0]
            if price[i] == -neg and tie[i] == t and 0 < need[i] <= free:
                return i
            heapq.heappop(heap)
        return None

    def order(self) -> list[int]:
        """Job indices in the current order."""
        price, tie = self.price, self.tie
        return sorted(range(len(price)), key=lambda i: (-price[i], tie[i]))
