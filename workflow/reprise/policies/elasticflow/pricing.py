"""One-pass pricing of a one-level scale-up for ElasticFlow's leftover GPUs
(docs/policies/elasticflow.md#leftover).

`price_given_back` returns what `price_fixed_start(..., timeline_without(..., until=d_al), ...)`
returns, plus the given-back timeline's first breakpoint after the planning time, without
building either dict: it merges the timeline (as two ascending lists shared by every job priced
between two grants) with the job's own plan up to the aligned deadline. Where nothing caps the
job below the levels it tries and every key is a whole number, its running sums telescope and
the loops' decisions follow from a few comparisons that clear their thresholds by a wide margin
(`_price_unconstrained`); that price comes with a `Certificate` of what it read, so the caller
can keep it across timeline edits that change nothing of that. Every other case (a thin
margin, a capped job, fractional keys, unsorted keys, a raise, a failure plan) returns None and
the caller runs the planner's own loops (`price_fixed_start`), so results are bit-identical.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Mapping
from itertools import pairwise
from typing import NamedTuple

from reprise.policies.elasticflow.planner import ScalingCurve, TimelineEdit
from reprise.sim.timing import align

_EXACT = 2.0**36
"""Keys (seconds) below this, times at most `_MAX_GPUS` GPUs: every product and sum of the
GPU-seconds stays a whole number below 2**53, so floats add them exactly in any order."""

_MAX_GPUS = 2**12

_SLACK = 1e-9
"""Relative margin of the certified shortcut: far above the rounding of the planner's running
sums (at most ~1e-12 relative for ten thousand terms)."""

_UNSURE: tuple[bool, None] = (False, None)
"""`_price_unconstrained`'s answer where a margin is too thin to decide without the loops."""


class Certificate(NamedTuple):
    """What a price from `_price_unconstrained` reads of the given-back timeline: its keys
    around the split and around the end, and that nothing is below `level` GPUs free from
    the first breakpoint to the aligned deadline. A timeline edit that leaves the first
    breakpoint, both closed windows and that floor alone leaves the price as it was."""

    level: int
    split_lo: float
    split_hi: float
    end_lo: float
    end_hi: float


class SortedTimeline:
    """The free-GPU timeline as parallel key/value lists; `keys` is None unless the keys
    ascend and no value repeats the one before it (what `price_given_back` relies on)."""

    __slots__ = ("integral", "keys", "values")

    def __init__(self, timeline: Mapping[float, int]) -> None:
        keys = list(timeline)
        values = list(timeline.values())
        ascending = all(a < b for a, b in pairwise(keys))
        compressed = all(a != b for a, b in pairwise(values))
        self.keys: list[float] | None = keys if ascending and compressed else None
        self.values: list[int] = values
        in_range = not keys or (min(keys) > -_EXACT and max(keys) < _EXACT)
        self.integral = in_range and all(map(float.is_integer, map(float, keys)))
        """Every key a whole number of seconds (sums of GPUs x lengths are then exact)."""

    def lowest(self, lo: float, hi: float) -> int | None:
        """Fewest free GPUs in force on [lo, hi) (None if the timeline is not sorted or lo
        precedes it)."""
        keys = self.keys
        if keys is None:
            return None
        i = bisect_right(keys, lo) - 1
        if i < 0:
            return None
        j = bisect_left(keys, hi, i + 1)
        return min(self.values[i:j])


def _given_back(
    tk: list[float],
    tv: list[int],
    alloc: Mapping[float, int],
    end: float,
    num_gpus: int,
    until: float,
    read_all: bool = False,
) -> tuple[list[float], list[int]] | None:
    """Keys and values of `timeline_without(timeline, alloc, end, num_gpus, until)` for an
    ascending, compressed timeline and an ascending plan; None where that function would take
    its literal path or raise.

    Between two consecutive plan keys (or the plan's end) the plan holds a constant number of
    GPUs, so each run of timeline keys there is one slice shifted by that number: a compressed
    timeline stays compressed inside a run, and only the first key of a run and the plan's
    own breakpoints can repeat the value before them.
    """
    akeys = list(alloc)
    n_akeys = len(akeys)
    for i in range(1, n_akeys):
        if akeys[i] <= akeys[i - 1]:
            return None
    nt = len(tk)
    if not nt or end < tk[0]:
        return None  # the plan ends before the timeline starts
    # keys read: up to the second timeline key after `until` (enough unless values repeat)
    lim = nt if read_all else min(nt, bisect_right(tk, until) + 2)
    beyond = tk[lim] if lim < nt else math.inf
    out_k: list[float] = []
    out_v: list[int] = []
    last: int | None = None
    ti = 0
    ai = 0
    held = 0
    shift = 0
    for b in sorted({*akeys, end}):
        if b >= beyond:
            break
        stop = bisect_left(tk, b, ti, lim)
        if stop > ti:
            vs = tv[ti:stop] if not shift else [v + shift for v in tv[ti:stop]]
            skip = 1 if vs[0] == last else 0
            out_k.extend(tk[ti + skip : stop])
            out_v.extend(vs[skip:])
            last = vs[-1]
        ti = stop
        while ai < n_akeys and akeys[ai] <= b:
            held = alloc[akeys[ai]]
            ai += 1
        shift = held if (ai and b < end) else 0
        if stop < lim and tk[stop] == b:
            continue  # a timeline key: the next run starts with it
        v = (tv[stop - 1] if stop else num_gpus) + shift
        if v != last:
            out_k.append(b)
            out_v.append(v)
            last = v
    if ti < lim:
        vs = tv[ti:lim] if not shift else [v + shift for v in tv[ti:lim]]
        skip = 1 if vs[0] == last else 0
        out_k.extend(tk[ti + skip : lim])
        out_v.extend(vs[skip:])
    cut = bisect_right(out_k, until)
    if cut == len(out_k):
        if lim < nt:
            return _given_back(tk, tv, alloc, end, num_gpus, until, read_all=True)
    else:
        del out_k[cut + 1 :]
        del out_v[cut + 1 :]
    if max(out_v) > num_gpus:
        return None
    return out_k, out_v


def price_given_back(
    curve: ScalingCurve,
    iter_left: float,
    deadline: float,
    t0: float,
    timeline: SortedTimeline,
    alloc: Mapping[float, int],
    end: float,
    num_gpus: int,
    slot: int,
    gpus: int,
    whole_plan: bool | None = None,
) -> tuple[str, float, float, float | None, Certificate | None] | None:
    """(branch, gpu_time, end, first break, certificate) of a scale-up to `gpus` GPUs from
    `t0` for a job holding `alloc` until `end`; see the module docstring. The first break is
    the first key after `t0` of the given-back timeline read up to the aligned deadline (None
    if it has one key); the certificate is None unless `_price_unconstrained` decided.
    `whole_plan` is `plan_is_integral(alloc, end)` where the caller already knows it."""
    tk = timeline.keys
    if tk is None or iter_left <= 0:
        return None
    d = deadline
    d_al = align(t0, d, slot)
    back = _given_back(tk, timeline.values, alloc, end, num_gpus, d_al)
    if back is None:
        return None
    keys, vals = back
    if not keys or keys[0] != t0:
        return None
    brk = keys[1] if len(keys) > 1 else None
    rates = curve.rates
    g_rate = rates.get(gpus)
    if g_rate is None or gpus > vals[0]:
        return None
    nxt = keys[1] if len(keys) > 1 else d_al
    real_end: float = math.ceil(t0 + iter_left / g_rate)
    plan_end = align(t0, real_end, slot)
    if nxt >= plan_end and d >= real_end:
        return "fixed", 0.0 + gpus * (plan_end - t0), plan_end, brk, None
    if d_al < t0 or nxt >= d_al:
        # nothing to plan between the next breakpoint and the deadline: a failure plan
        return None
    pos = bisect_left(keys, d_al)
    if pos == len(keys) or keys[pos] != d_al:
        keys.insert(pos, d_al)
        vals.insert(pos, vals[pos - 1])
    iters = iter_left - (nxt - t0) * g_rate
    if whole_plan is None:
        whole_plan = plan_is_integral(alloc, end)
    if not (timeline.integral and iters > 0 and whole_plan):
        return None
    fits = curve.fit_table(num_gpus)
    decided, known = _price_unconstrained(
        curve, keys, vals, pos, t0, nxt, d, iters, gpus, fits, num_gpus, slot
    )
    if not decided:
        return None  # the planner's own loops decide (`price_fixed_start`)
    return None if known is None else ("share", known[0], known[1], brk, known[2])


def still_holds(
    cert: Certificate, edit: TimelineEdit, timeline: SortedTimeline, brk: float, d_al: float
) -> bool:
    """Whether a price certified on the timeline before `edit` holds on `timeline` (after
    it): no key of the given-back timeline changes in the certificate's windows, and wherever
    the edit changes the timeline between the first breakpoint `brk` and the aligned deadline
    at least the certificate's level stays free (the job's own GPUs only add to that). The
    caller checks separately that the first breakpoint is still `brk`."""
    if not timeline.integral:
        return False
    if edit.near(cert.split_lo, cert.split_hi) or edit.near(cert.end_lo, cert.end_hi):
        return False
    for lo, hi in edit.windows(brk, d_al):
        fewest = timeline.lowest(lo, hi)
        if fewest is None or fewest < cert.level:
            return False
    return True


def plan_is_integral(alloc: Mapping[float, int], end: float) -> bool:
    """The plan's keys and end are whole numbers of seconds (in the exact range)."""
    if not (float(end).is_integer() and abs(end) < _EXACT):
        return False
    return all(float(k).is_integer() and abs(k) < _EXACT for k in alloc)


# Plain tuples, not NamedTuples: one of each is made per priced job, and a NamedTuple's
# constructor costs ~2 % of an ElasticFlow run here.
_Span = tuple[list[float], int, float, float, float, float]
"""What the level search and the finish read: (keys, pos, nxt, d, iters, scale): the given-back
timeline's keys (the aligned deadline at index `pos`), the first breakpoint, the deadline, the
work left after the breakpoint, and the scale of the margins."""

_Level = tuple[int, float, int, int]
"""The level the planner's loops settle on and where they split the job's plan: (quota, rate,
last quota, split): the level tried before (0 if none) runs up to the key at index `split`."""


def _price_unconstrained(
    curve: ScalingCurve,
    keys: list[float],
    vals: list[int],
    pos: int,
    t0: float,
    nxt: float,
    d: float,
    iters: float,
    gpus: int,
    fits: list[int],
    num_gpus: int,
    slot: int,
) -> tuple[bool, tuple[float, float, Certificate] | None]:
    """(True, (gpu_time, end, certificate)) of the "share" plan when nothing after the
    planning start caps the job below the levels tried; (True, None) where the planner finds
    no level (or raises); `_UNSURE` otherwise.

    Then the planner's running sums telescope: latest interval first, the sum at key p is
    (d - p) x rate(level); walking forward from the split it is (x - split) x rate. The
    float sums differ from these by far less than `_SLACK`, so where every comparison the
    loops would make clears its threshold by more than that, the loops' decisions (failed
    levels, the split key, the interval the job finishes in, the ceiling of its last
    seconds) are known without them. The GPU-seconds are whole numbers (integral keys), so
    their sum is exact in any order.
    """
    lowest = min(vals[1:pos])
    if lowest < 0 or num_gpus > _MAX_GPUS:
        return _UNSURE
    span = (keys, pos, nxt, d, iters, abs(d) + abs(nxt) + slot)
    decided, level = _settled_level(curve, span, fits[lowest], num_gpus)
    if level is None:
        return decided, None
    last = _last_interval(curve, span, level)
    if last is None:
        return _UNSURE
    return True, _share_price(keys, pos, t0, nxt, gpus, level, last, slot)


def _settled_level(
    curve: ScalingCurve, span: _Span, floor: int, num_gpus: int
) -> tuple[bool, _Level | None]:
    """The planner's level search, lowest level first: (True, level) for the first level that
    covers `iters` between a key and the deadline, (True, None) where no level does, `_UNSURE`
    where a level exceeds what is free (`floor`) or a margin is too thin."""
    keys, pos, nxt, d, iters, scale = span
    rates = curve.rates
    quota = curve.next_level(0)
    max_gpu = curve.max_gpu
    last_quota = 0
    while quota <= num_gpus and quota <= max_gpu:
        r_q = rates.get(quota)
        if quota > floor or r_q is None or r_q <= 0:
            return _UNSURE
        tol = _SLACK * (scale * r_q + abs(iters))
        reach = (d - nxt) * r_q
        if reach >= iters + tol:
            # the latest key p with (d - p) x rate >= iters
            k = bisect_right(keys, d - iters / r_q, 1, pos) - 1
            if k < 1 or (d - keys[k]) * r_q < iters + tol:
                return _UNSURE
            if k + 1 < pos and (d - keys[k + 1]) * r_q >= iters - tol:
                return _UNSURE
            return True, (quota, r_q, last_quota, k)
        if reach >= iters - tol:
            return _UNSURE
        last_quota = quota
        quota = curve.next_level(quota)
        if quota == last_quota:
            break
    return True, None


def _last_interval(curve: ScalingCurve, span: _Span, level: _Level) -> tuple[int, int] | None:
    """(index of the key the job's last interval starts at, whole seconds it runs past that
    key): the lower level up to the split, then `level` until the work is done; None where
    a margin is too thin (or the job may finish before its split, where the planner raises)."""
    keys, pos, nxt, d, iters, scale = span
    _, r, last_quota, split = level
    at_split = keys[split]
    left = iters
    r_l = 0.0
    if last_quota and split > 1:
        r_l = curve.rates[last_quota]
        tol = _SLACK * (scale * r_l + abs(iters))
        if (at_split - nxt) * r_l >= iters - tol:
            return None
        left = iters - (at_split - nxt) * r_l
    tol = _SLACK * (scale * (r + r_l) + abs(iters))
    # the first interval from the split on whose end x has (x - split) x rate >= left
    finish = at_split + left / r
    j = bisect_left(keys, finish, split + 1, pos)
    last = pos - 1
    if j < pos:
        k_f = j - 1
        if (keys[j] - at_split) * r - left < tol:
            return None
    else:
        k_f = last
        if d <= keys[last] or (d - at_split) * r - left < tol:
            return None
    s = keys[k_f]
    if k_f > split and (s - at_split) * r - left > -tol:
        return None
    seconds = (left - (s - at_split) * r) / r
    margin = tol / r + _SLACK * (abs(seconds) + 1)
    whole = math.ceil(seconds)
    if whole - seconds < margin or seconds - (whole - 1) < margin:
        return None
    return k_f, whole


def _share_price(
    keys: list[float],
    pos: int,
    t0: float,
    nxt: float,
    gpus: int,
    level: _Level,
    last: tuple[int, int],
    slot: int,
) -> tuple[float, float, Certificate] | None:
    """(gpu_time, aligned end, certificate) of the plan: `gpus` until the first breakpoint,
    the lower level until the split, `level` until the aligned end; None where the aligned
    end overruns the interval the job finishes in (the planner finds no plan)."""
    k_f, whole = last
    quota, _, last_quota, split = level
    s = keys[k_f]
    plan_end = s + align(0, whole, slot)
    t = keys[k_f + 1]
    if plan_end > t:
        return None
    upto = t if k_f + 1 < pos else plan_end
    at_split = keys[split]
    total = 0.0 + gpus * (nxt - t0)
    total += last_quota * (at_split - nxt)
    total += quota * (s - at_split)
    cert = Certificate(quota, at_split, keys[split + 1], s, t)
    return total + quota * (upto - s), plan_end, cert
