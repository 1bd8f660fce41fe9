"""ElasticFlow's leftover pass compiled: `_EfSim.price` for every runnable job of a leftover
pass in one call, over arrays, and a grant's offer (docs/policies/elasticflow.md#the-compiled-pass).

The same decisions as the Python methods, step for step, on the same float operations in the
same order: `marginal_holds` (`first_break_given_back`, `TimelineEdit`, `still_holds`),
`price_certified` (`price_given_back` and the helpers of pricing.py) and, in
`fixed_start_offer`, `offer_for` where the planner ends in its "fixed" or "share" branch. A job
the Python planner must price (`price_by_planner`) is handed back by its row. The stable
descending sort by marginal and the pick of the next grant are here too.

Deadlines from 2**53 on (best-effort jobs' INT64_MAX) are floats here, and Python computes the
aligned deadline from an integer planning time exactly: the two differ, but a price reads the
aligned deadline only in comparisons with the timeline's keys and the plan's times, all far
below it, so the prices agree. A plan, though, may keep the aligned deadline as a key, so such
a job's offer is planned in Python.

Rows are the runnable jobs at the start of a pass (`LeftoverRows` in leftover.py keeps them);
`order` lists the rows in the runnable list's current order.
"""

from __future__ import annotations

import math

import numpy as np

from reprise.jit import compiled, inlined
from reprise.policies.elasticflow.pricing import _EXACT, _MAX_GPUS, _SLACK
from reprise.sim.timing import align

# integer columns of a row
GPUS = 0
NEXT = 1
CURVE = 2
STAMP = 3
ALEN = 4
"""Number of keys of the row's plan (`alloc`)."""
ASC = 5
"""The plan's keys ascend (`is_ascending`)."""
CERT = 6
"""The price has a certificate (`price_cert` is not None)."""
LEVEL = 7
"""The certificate's level."""
OFFER = 8
"""The Python planner kept a tentative plan (`offer` is not None)."""
HUGE_DEADLINE = 9
"""The deadline is 2**53 or later (best-effort jobs' INT64_MAX): the grant's offer is planned in
Python (see `fixed_start_offer`)."""
N_INT = 10

# float columns of a row
ITER_LEFT = 0
DEADLINE = 1
END = 2
OWN = 3
"""`own_gpu_time`."""
BREAK = 4
"""`price_break` (NaN for None)."""
FIXED_END = 5
"""`price_fixed_end` (NaN for None)."""
SPLIT_LO = 6
SPLIT_HI = 7
END_LO = 8
END_HI = 9
MARGINAL = 10
N_FLOAT = 11

# what `price_rows` did with a row
SKIPPED = 0
PRICED = 1
NEEDS_PLANNER = 2

_NONE = math.nan


@inlined
def _bisect_right(a: np.ndarray, x: float, lo: int, hi: int) -> int:
    while lo < hi:
        mid = (lo + hi) // 2
        if x < a[mid]:
            hi = mid
        else:
            lo = mid + 1
    return lo


@inlined
def _bisect_left(a: np.ndarray, x: float, lo: int, hi: int) -> int:
    while lo < hi:
        mid = (lo + hi) // 2
        if a[mid] < x:
            lo = mid + 1
        else:
            hi = mid
    return lo


_align = inlined(align)
"""`reprise.sim.timing.align` itself, compiled (numba keeps Python's float `//` and `%`)."""


@inlined
def _next_level(levels: np.ndarray, n_levels: int, gpus: int) -> int:
    """`ScalingCurve.next_level` over one row of the level table."""
    found = gpus == 0
    for i in range(n_levels):
        level = levels[i]
        if level == gpus:
            found = True
        elif found:
            return int(level)
    return gpus


@inlined
def _rate(levels: np.ndarray, rates: np.ndarray, n_levels: int, gpus: int) -> float:
    """`ScalingCurve.rates.get(gpus)`, NaN for None."""
    for i in range(n_levels):
        if levels[i] == gpus:
            return float(rates[i])
    return _NONE


@compiled
def timeline_flags(tk: np.ndarray, tv: np.ndarray) -> tuple[bool, bool]:
    """(keys ascend and no value repeats the one before, every key a whole number in the exact
    range): `SortedTimeline.keys is not None` and `SortedTimeline.integral`."""
    nt = tk.shape[0]
    ordered = True
    for i in range(1, nt):
        if not tk[i - 1] < tk[i] or tv[i - 1] == tv[i]:
            ordered = False
            break
    integral = True
    for i in range(nt):
        k = tk[i]
        if not (-_EXACT < k < _EXACT) or k != math.floor(k):
            integral = False
            break
    return ordered, integral


@compiled
def timeline_edit(
    ka: np.ndarray, va: np.ndarray, kb: np.ndarray, vb: np.ndarray
) -> tuple[np.ndarray, np.ndarray, bool]:
    """(starts, ends, everywhere) of `TimelineEdit(old, new)` from the two timelines' keys
    and values in insertion order."""
    na = ka.shape[0]
    nb = kb.shape[0]
    starts = np.empty(na + nb + 1)
    ends = np.empty(na + nb + 1)
    everywhere = na == 0 or nb == 0 or ka[0] != kb[0]
    for i in range(1, na):
        if not ka[i - 1] < ka[i]:
            everywhere = True
    for j in range(1, nb):
        if not kb[j - 1] < kb[j]:
            everywhere = True
    if everywhere:
        return starts[:0], ends[:0], True
    m = 0
    i = j = 0
    a = b = 0
    is_open = False
    open_at = 0.0
    while i < na or j < nb:
        t = ka[i] if i < na else math.inf
        if j < nb and kb[j] < t:
            t = kb[j]
        if i < na and ka[i] == t:
            a = va[i]
            i += 1
        if j < nb and kb[j] == t:
            b = vb[j]
            j += 1
        if a != b and not is_open:
            open_at = t
            is_open = True
        elif a == b and is_open:
            starts[m] = open_at
            ends[m] = t
            m += 1
            is_open = False
    if is_open:
        starts[m] = open_at
        ends[m] = math.inf
        m += 1
    return starts[:m], ends[:m], False


@inlined
def _meets(
    starts: np.ndarray, ends: np.ndarray, everywhere: bool, lo: float, hi: float, near: bool
) -> bool:
    """`TimelineEdit.touches(lo, hi)`, or with `near` `TimelineEdit.near(lo, hi)` (a
    difference ending at `lo` counts too)."""
    if everywhere:
        return True
    n = ends.shape[0]
    k = _bisect_left(ends, lo, 0, n) if near else _bisect_right(ends, lo, 0, n)
    return bool(k < starts.shape[0] and starts[k] <= hi)


@inlined
def _lowest(tk: np.ndarray, tv: np.ndarray, ordered: bool, lo: float, hi: float) -> int:
    """`SortedTimeline.lowest`; -1 for None (free GPUs are never negative where it is read:
    a negative value fails the caller's test either way)."""
    if not ordered:
        return -1
    nt = tk.shape[0]
    i = _bisect_right(tk, lo, 0, nt) - 1
    if i < 0:
        return -1
    j = _bisect_left(tk, hi, i + 1, nt)
    fewest = tv[i]
    for q in range(i + 1, j):
        if tv[q] < fewest:
            fewest = tv[q]
    return int(fewest)


@inlined
def _first_break(
    tk: np.ndarray,
    tv: np.ndarray,
    ak: np.ndarray,
    av: np.ndarray,
    na: int,
    ascending: bool,
    end: float,
) -> tuple[bool, float]:
    """`first_break_given_back`: (applies, key), key NaN for None."""
    nt = tk.shape[0]
    if nt == 0 or na == 0 or not ascending:
        return False, _NONE
    t0 = tk[0]
    if ak[0] < t0 or end < t0:
        return False, _NONE
    i = j = 0
    free = held = 0
    end_pending = True
    has_first = False
    first = 0
    while True:
        t = tk[i] if i < nt else math.inf
        if j < na and ak[j] < t:
            t = ak[j]
        if end_pending and end < t:
            t = end
        if t == math.inf:
            return True, _NONE
        while i < nt and tk[i] <= t:
            free = tv[i]
            i += 1
        while j < na and ak[j] <= t:
            held = av[j]
            j += 1
        if end_pending and end <= t:
            end_pending = False
        value = free + held if t < end else free
        if not has_first:
            first = value
            has_first = True
        elif value != first:
            return True, t


@inlined
def _still_holds(
    tk: np.ndarray,
    tv: np.ndarray,
    ordered: bool,
    integral: bool,
    starts: np.ndarray,
    ends: np.ndarray,
    everywhere: bool,
    level: int,
    cert: np.ndarray,
    brk: float,
    d_al: float,
) -> bool:
    """`pricing.still_holds`; `cert` is the row's float columns (the certificate's windows)."""
    if not integral:
        return False
    if _meets(starts, ends, everywhere, cert[SPLIT_LO], cert[SPLIT_HI], True):
        return False
    if _meets(starts, ends, everywhere, cert[END_LO], cert[END_HI], True):
        return False
    if everywhere:
        fewest = _lowest(tk, tv, ordered, brk, d_al)
        return fewest >= 0 and fewest >= level
    for k in range(_bisect_right(ends, brk, 0, ends.shape[0]), starts.shape[0]):
        a = starts[k]
        if a >= d_al:
            break
        fewest = _lowest(tk, tv, ordered, max(a, brk), min(ends[k], d_al))
        if fewest < 0 or fewest < level:
            return False
    return True


@inlined
def _whole_plan(ak: np.ndarray, na: int, end: float) -> bool:
    """`pricing.plan_is_integral`."""
    if not (abs(end) < _EXACT and end == math.floor(end)):
        return False
    for q in range(na):
        k = ak[q]
        if not (abs(k) < _EXACT and k == math.floor(k)):
            return False
    return True


@compiled
def _given_back_once(
    tk: np.ndarray,
    tv: np.ndarray,
    ak: np.ndarray,
    av: np.ndarray,
    na: int,
    end: float,
    num_gpus: int,
    until: float,
    read_all: bool,
    ok: np.ndarray,
    ov: np.ndarray,
) -> int:
    """`pricing._given_back` into `ok`/`ov`: the number of keys; -1 for None, -2 where it
    must read the whole timeline (its `read_all` retry)."""
    for q in range(1, na):
        if ak[q] <= ak[q - 1]:
            return -1
    nt = tk.shape[0]
    if nt == 0 or end < tk[0]:
        return -1
    lim = nt if read_all else min(nt, _bisect_right(tk, until, 0, nt) + 2)
    beyond = tk[lim] if lim < nt else math.inf
    m = 0
    has_last = False
    last = 0
    ti = 0
    ai = 0
    held = 0
    shift = 0
    p = 0
    end_done = False
    while True:
        # the plan's keys and its end, ascending, each once
        if p < na and (end_done or ak[p] <= end):
            b = ak[p]
            p += 1
            if b == end:
                end_done = True
        elif not end_done:
            b = end
            end_done = True
        else:
            break
        if b >= beyond:
            break
        stop = _bisect_left(tk, b, ti, lim)
        if stop > ti:
            skip = 1 if (has_last and tv[ti] + shift == last) else 0
            for q in range(ti + skip, stop):
                ok[m] = tk[q]
                ov[m] = tv[q] + shift
                m += 1
            last = tv[stop - 1] + shift
            has_last = True
        ti = stop
        while ai < na and ak[ai] <= b:
            held = av[ai]
            ai += 1
        shift = held if (ai > 0 and b < end) else 0
        if stop < lim and tk[stop] == b:
            continue
        v = (tv[stop - 1] if stop > 0 else num_gpus) + shift
        if not has_last or v != last:
            ok[m] = b
            ov[m] = v
            m += 1
            last = v
            has_last = True
    if ti < lim:
        skip = 1 if (has_last and tv[ti] + shift == last) else 0
        for q in range(ti + skip, lim):
            ok[m] = tk[q]
            ov[m] = tv[q] + shift
            m += 1
    cut = _bisect_right(ok, until, 0, m)
    if cut == m:
        if lim < nt:
            return -2
    else:
        m = cut + 1
    highest = ov[0]
    for q in range(1, m):
        if ov[q] > highest:
            highest = ov[q]
    if highest > num_gpus:
        return -1
    return m


@compiled
def _price_given_back(
    tk: np.ndarray,
    tv: np.ndarray,
    ordered: bool,
    integral: bool,
    levels: np.ndarray,
    rates: np.ndarray,
    n_levels: int,
    max_gpu: int,
    fits: np.ndarray,
    iter_left: float,
    d: float,
    t0: float,
    ak: np.ndarray,
    av: np.ndarray,
    na: int,
    end: float,
    num_gpus: int,
    slot: int,
    gpus: int,
    ok: np.ndarray,
    ov: np.ndarray,
    out: np.ndarray,
) -> int:
    """`pricing.price_given_back`: 0 for None, 1 for "fixed", 2 for "share"; `out` gets
    (gpu_time, end, first break, level, split_lo, split_hi, end_lo, end_hi)."""
    if not ordered or iter_left <= 0:
        return 0
    d_al = _align(t0, d, slot)
    m = _given_back_once(tk, tv, ak, av, na, end, num_gpus, d_al, False, ok, ov)
    if m == -2:
        m = _given_back_once(tk, tv, ak, av, na, end, num_gpus, d_al, True, ok, ov)
    if m <= 0 or ok[0] != t0:
        return 0
    brk = ok[1] if m > 1 else _NONE
    g_rate = _rate(levels, rates, n_levels, gpus)
    if math.isnan(g_rate) or gpus > ov[0]:
        return 0
    nxt = ok[1] if m > 1 else d_al
    real_end = math.ceil(t0 + iter_left / g_rate)
    plan_end = _align(t0, real_end, slot)
    if nxt >= plan_end and d >= real_end:
        out[0] = 0.0 + gpus * (plan_end - t0)
        out[1] = plan_end
        out[2] = brk
        return 1
    if d_al < t0 or nxt >= d_al:
        return 0
    pos = _bisect_left(ok, d_al, 0, m)
    if pos == m or ok[pos] != d_al:
        for q in range(m, pos, -1):
            ok[q] = ok[q - 1]
            ov[q] = ov[q - 1]
        ok[pos] = d_al
        ov[pos] = ov[pos - 1]
        m += 1
    iters = iter_left - (nxt - t0) * g_rate
    if not (integral and iters > 0 and _whole_plan(ak, na, end)):
        return 0
    # _price_unconstrained
    lowest = ov[1]
    for q in range(2, pos):
        if ov[q] < lowest:
            lowest = ov[q]
    if lowest < 0 or num_gpus > _MAX_GPUS:
        return 0
    scale = abs(d) + abs(nxt) + slot
    # _settled_level
    floor = fits[lowest]
    quota = _next_level(levels, n_levels, 0)
    last_quota = 0
    split = -1
    r = 0.0
    while quota <= num_gpus and quota <= max_gpu:
        r_q = _rate(levels, rates, n_levels, quota)
        if quota > floor or math.isnan(r_q) or r_q <= 0:
            return 0
        tol = _SLACK * (scale * r_q + abs(iters))
        reach = (d - nxt) * r_q
        if reach >= iters + tol:
            k = _bisect_right(ok, d - iters / r_q, 1, pos) - 1
            if k < 1 or (d - ok[k]) * r_q < iters + tol:
                return 0
            if k + 1 < pos and (d - ok[k + 1]) * r_q >= iters - tol:
                return 0
            split = k
            r = r_q
            break
        if reach >= iters - tol:
            return 0
        last_quota = quota
        quota = _next_level(levels, n_levels, quota)
        if quota == last_quota:
            break
    if split < 0:
        return 0  # no level: the planner's failure plan
    # _last_interval
    at_split = ok[split]
    left = iters
    r_l = 0.0
    if last_quota and split > 1:
        r_l = _rate(levels, rates, n_levels, last_quota)
        tol = _SLACK * (scale * r_l + abs(iters))
        if (at_split - nxt) * r_l >= iters - tol:
            return 0
        left = iters - (at_split - nxt) * r_l
    tol = _SLACK * (scale * (r + r_l) + abs(iters))
    finish = at_split + left / r
    j = _bisect_left(ok, finish, split + 1, pos)
    last = pos - 1
    if j < pos:
        k_f = j - 1
        if (ok[j] - at_split) * r - left < tol:
            return 0
    else:
        k_f = last
        if d <= ok[last] or (d - at_split) * r - left < tol:
            return 0
    s = ok[k_f]
    if k_f > split and (s - at_split) * r - left > -tol:
        return 0
    seconds = (left - (s - at_split) * r) / r
    margin = tol / r + _SLACK * (abs(seconds) + 1)
    whole = math.ceil(seconds)
    if whole - seconds < margin or seconds - (whole - 1) < margin:
        return 0
    # _share_price
    plan_end = s + _align(0.0, float(whole), slot)
    t = ok[k_f + 1]
    if plan_end > t:
        return 0
    upto = t if k_f + 1 < pos else plan_end
    total = 0.0 + gpus * (nxt - t0)
    total += last_quota * (at_split - nxt)
    total += quota * (s - at_split)
    out[0] = total + quota * (upto - s)
    out[1] = plan_end
    out[2] = brk
    out[3] = quota
    out[4] = at_split
    out[5] = ok[split + 1]
    out[6] = s
    out[7] = t
    return 2


@compiled
def price_rows(
    order: np.ndarray,
    only_growable: bool,
    free: int,
    now: float,
    stamp: int,
    has_edit: bool,
    starts: np.ndarray,
    ends: np.ndarray,
    everywhere: bool,
    tk: np.ndarray,
    tv: np.ndarray,
    num_gpus: int,
    slot: int,
    ji: np.ndarray,
    jf: np.ndarray,
    ak: np.ndarray,
    av: np.ndarray,
    levels: np.ndarray,
    rates: np.ndarray,
    n_levels: np.ndarray,
    max_gpu: np.ndarray,
    fits: np.ndarray,
    status: np.ndarray,
) -> tuple[int, int]:
    """One pricing pass of `distribute_leftover` over the rows in `order` (`only_growable`: the
    re-pricing after a grant, which skips rows at their last level). Sets each row's status;
    returns the number of marginal computations (`marginal_calls`) and of rows left to the
    Python planner (NEEDS_PLANNER)."""
    ordered, integral = timeline_flags(tk, tv)
    cap = tk.shape[0] + ak.shape[1] + 3
    ok = np.empty(cap)
    ov = np.empty(cap, dtype=np.int64)
    out = np.empty(8)
    calls = 0
    left = 0
    for r in order:
        status[r] = SKIPPED
        gpus = ji[r, GPUS]
        nxt_gpus = ji[r, NEXT]
        if only_growable and not nxt_gpus - gpus > 0:
            continue
        row = jf[r]
        if nxt_gpus - gpus > free or nxt_gpus == gpus:
            row[MARGINAL] = -math.inf
            continue
        calls += 1
        status[r] = PRICED
        if gpus == 0:
            row[MARGINAL] = math.inf
            ji[r, OFFER] = 0
            ji[r, STAMP] = stamp
            row[BREAK] = _NONE
            row[FIXED_END] = _NONE
            continue
        na = ji[r, ALEN]
        ascending = ji[r, ASC] != 0
        d = row[DEADLINE]
        end = row[END]
        d_al = _align(now, d, slot)
        brk = row[BREAK]
        if has_edit and ji[r, STAMP] == stamp - 1 and not math.isnan(brk):
            fixed_end = row[FIXED_END]
            holds = not math.isnan(fixed_end) or not _meets(
                starts, ends, everywhere, brk, d_al, False
            )
            if not holds and ji[r, CERT] != 0:
                level = ji[r, LEVEL]
                holds = _still_holds(
                    tk, tv, ordered, integral, starts, ends, everywhere, level, row, brk, d_al
                )
            if holds:
                applies, now_brk = _first_break(tk, tv, ak[r], av[r], na, ascending, end)
                if not applies:
                    holds = False
                elif math.isnan(fixed_end):
                    holds = now_brk == brk
                else:
                    holds = (d_al if math.isnan(now_brk) else now_brk) >= fixed_end
            if holds:
                ji[r, OFFER] = 0
                ji[r, STAMP] = stamp
                continue
        c = ji[r, CURVE]
        branch = _price_given_back(
            tk, tv, ordered, integral, levels[c], rates[c], n_levels[c], max_gpu[c], fits[c],
            row[ITER_LEFT], d, now, ak[r], av[r], na, end, num_gpus, slot, nxt_gpus, ok, ov, out,
        )  # fmt: skip
        if branch == 0:
            status[r] = NEEDS_PLANNER
            left += 1
            continue
        ji[r, OFFER] = 0
        row[MARGINAL] = (out[0] - row[OWN]) / (nxt_gpus - gpus)
        ji[r, STAMP] = stamp
        row[BREAK] = out[2]
        if branch == 1:
            ji[r, CERT] = 0
            row[FIXED_END] = out[1] if not math.isnan(out[2]) else _NONE
        else:
            ji[r, CERT] = 1
            ji[r, LEVEL] = int(out[3])
            row[FIXED_END] = _NONE
            row[SPLIT_LO] = out[4]
            row[SPLIT_HI] = out[5]
            row[END_LO] = out[6]
            row[END_HI] = out[7]
    return calls, left


@compiled
def sort_and_pick(order: np.ndarray, ji: np.ndarray, jf: np.ndarray, free: int) -> int:
    """Sort `order` by marginal, highest first, keeping the order of equal marginals (Python's
    stable `sort(reverse=True)`), then the first row that can grow within `free` GPUs (-1 if
    none); -2, with `order` untouched, where a marginal is NaN (the caller sorts)."""
    n = order.shape[0]
    for q in range(n):
        if math.isnan(jf[order[q], MARGINAL]):
            return -2
    for q in range(1, n):
        r = order[q]
        key = jf[r, MARGINAL]
        p = q
        while p > 0 and jf[order[p - 1], MARGINAL] < key:
            order[p] = order[p - 1]
            p -= 1
        order[p] = r
    return pick(order, ji, free)


@compiled
def pick(order: np.ndarray, ji: np.ndarray, free: int) -> int:
    """The first row in `order` that can grow one level within `free` GPUs (-1 if none)."""
    for r in order:
        step = ji[r, NEXT] - ji[r, GPUS]
        if step <= free and step != 0:
            return int(r)
    return -1


@inlined
def _insert_key(keys: np.ndarray, values: np.ndarray, m: int, key: float, value: int) -> int:
    """Set `key` to `value` in the ascending first `m` entries (`planner._insert`); returns
    the new count."""
    pos = _bisect_left(keys, key, 0, m)
    if pos < m and keys[pos] == key:
        values[pos] = value
        return m
    for q in range(m, pos, -1):
        keys[q] = keys[q - 1]
        values[q] = values[q - 1]
    keys[pos] = key
    values[pos] = value
    return m + 1


@inlined
def _merge_runs(
    keys: np.ndarray, values: np.ndarray, m: int, ok: np.ndarray, ov: np.ndarray
) -> int:
    """`merge_runs` of the first `m` entries into `ok`/`ov`; returns their count."""
    n = 0
    for q in range(m):
        if n == 0 or values[q] != ov[n - 1]:
            ok[n] = keys[q]
            ov[n] = values[q]
            n += 1
    return n


@compiled
def fixed_start_offer(
    tk: np.ndarray,
    tv: np.ndarray,
    ak: np.ndarray,
    av: np.ndarray,
    na: int,
    end: float,
    iter_left: float,
    d: float,
    t0: float,
    gpus: int,
    levels: np.ndarray,
    rates: np.ndarray,
    n_levels: int,
    max_gpu: int,
    fits: np.ndarray,
    num_gpus: int,
    slot: int,
) -> tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray, float, float]:
    """`_EfSim.offer_for` where the plan ends in the planner's "fixed" or "share" branch:
    (branch, alloc keys, alloc values, timeline keys, timeline values, end, real end), both
    mappings compressed as `Plan.alloc` and `Plan.timeline` give them. Branch 0 (and empty
    arrays) where the Python planner must plan: a failure plan, a case it raises on, an
    unsorted timeline or plan, keys before the planning time."""
    none = np.empty(0)
    none_int = np.empty(0, dtype=np.int64)
    ordered, _ = timeline_flags(tk, tv)
    if not ordered or iter_left <= 0:
        return 0, none, none_int, none, none_int, 0.0, 0.0
    cap = tk.shape[0] + na + 4
    # the given-back timeline (`timeline_without`), then the planner's copy of it
    gk = np.empty(cap)
    gv = np.empty(cap, dtype=np.int64)
    m = _given_back_once(tk, tv, ak, av, na, end, num_gpus, math.inf, True, gk, gv)
    if m <= 0 or gk[0] != t0:
        return 0, none, none_int, none, none_int, 0.0, 0.0
    nk = gk.copy()
    nv = gv.copy()
    nm = m
    d_al = _align(t0, d, slot)
    if d_al < t0:
        return 0, none, none_int, none, none_int, 0.0, 0.0
    nm = _insert_key(nk, nv, nm, d_al, gv[_bisect_right(gk, d_al, 0, m) - 1])
    # _reserve_fixed
    available = gv[0]
    g_rate = _rate(levels, rates, n_levels, gpus)
    if gpus > available or math.isnan(g_rate):
        return 0, none, none_int, none, none_int, 0.0, 0.0
    nxt = gk[1] if m > 1 else d_al
    real_end = math.ceil(t0 + iter_left / g_rate)
    plan_end = _align(t0, real_end, slot)
    ok = np.empty(cap)
    ov = np.empty(cap, dtype=np.int64)
    if nxt >= plan_end and d >= real_end:
        nv[0] = available - gpus
        pos = _bisect_left(gk, plan_end, 0, m)
        if pos == m or gk[pos] != plan_end:
            nm = _insert_key(nk, nv, nm, plan_end, available)
        n_tl = _merge_runs(nk, nv, nm, ok, ov)
        alloc_k = np.empty(1)
        alloc_k[0] = t0
        alloc_v = np.empty(1, dtype=np.int64)
        alloc_v[0] = gpus
        return 1, alloc_k, alloc_v, ok[:n_tl].copy(), ov[:n_tl].copy(), plan_end, real_end
    span = (d - t0) if nxt == d_al else (nxt - t0)
    iters = iter_left - span * g_rate
    nv[0] -= gpus
    start = nxt
    if iters <= 0 or not start > t0:
        return 0, none, none_int, none, none_int, 0.0, 0.0
    quota = _next_level(levels, n_levels, 0)
    if not (quota <= num_gpus and quota <= max_gpu):
        return 0, none, none_int, none, none_int, 0.0, 0.0
    # _intervals and _split_level: the lowest level that finishes by the deadline
    split = math.nan
    last_quota = 0
    found = False
    while quota <= num_gpus and quota <= max_gpu:
        acc = 0.0
        seg_end = d_al
        for q in range(nm - 1, -1, -1):
            p = nk[q]
            if p >= d_al:
                continue
            if p < start:
                break
            most = fits[nv[q]]
            if most:
                span = (d - p) if seg_end == d_al else (seg_end - p)
                r = _rate(levels, rates, n_levels, most if most < quota else quota)
                if math.isnan(r):
                    return 0, none, none_int, none, none_int, 0.0, 0.0
                acc += span * r
                if acc >= iters:
                    split = p
                    found = True
                    break
            seg_end = p
        if found:
            break
        last_quota = quota
        quota = _next_level(levels, n_levels, quota)
        if quota == last_quota:
            break
    if not found:
        return 0, none, none_int, none, none_int, 0.0, 0.0
    # _share_walk: the GPUs each key gets (-1: not a key of the plan), taken after the walk
    held = np.full(nm, -1, dtype=np.int64)
    for q in range(nm):
        if nk[q] < d_al:
            held[q] = 0
    held[0] = gpus
    seg = -1
    g = 0
    plan_end = math.nan
    real_end = 0
    for q in range(nm):
        t = nk[q]
        if t > d_al:
            break
        if t < start:
            continue
        if seg >= 0:
            held[seg] = g
            if g:
                r = _rate(levels, rates, n_levels, g)
                if math.isnan(r):
                    return 0, none, none_int, none, none_int, 0.0, 0.0
                s = nk[seg]
                its = ((d - s) if t == d_al else (t - s)) * r
                if s < split:
                    if its >= iters:
                        return 0, none, none_int, none, none_int, 0.0, 0.0
                    iters -= its
                elif its < iters:
                    iters -= its
                else:
                    left = math.ceil(iters / r)
                    plan_end = s + _align(0.0, float(left), slot)
                    if plan_end > t:
                        return 0, none, none_int, none, none_int, 0.0, 0.0
                    real_end = s + left
                    break
        seg = q
        g = fits[nv[q]]
        limit = quota if t >= split else last_quota
        if g > limit:
            g = limit
    if math.isnan(plan_end):
        if seg < 0:
            return 0, none, none_int, none, none_int, 0.0, 0.0
        held[seg] = g
        r = _rate(levels, rates, n_levels, g)
        if math.isnan(r):
            return 0, none, none_int, none, none_int, 0.0, 0.0
        left = math.ceil(iters / r)
        plan_end = nk[seg] + _align(0.0, float(left), slot)
        real_end = nk[seg] + left
    # the GPUs taken, from `start` on (the walk's segments with GPUs)
    for q in range(nm):
        if nk[q] >= start and held[q] > 0 and nk[q] <= d_al:
            nv[q] -= held[q]
            if nv[q] < 0:
                return 0, none, none_int, none, none_int, 0.0, 0.0
    release = num_gpus
    for q in range(m):
        if gk[q] < start:
            continue
        if gk[q] < plan_end:
            release = gv[q]
    n_alloc = 0
    alloc_k = np.empty(nm)
    alloc_v = np.empty(nm, dtype=np.int64)
    for q in range(nm):
        if held[q] >= 0 and (n_alloc == 0 or held[q] != alloc_v[n_alloc - 1]):
            alloc_k[n_alloc] = nk[q]
            alloc_v[n_alloc] = held[q]
            n_alloc += 1
    pos = _bisect_left(gk, plan_end, 0, m)
    if pos == m or gk[pos] != plan_end:
        nm = _insert_key(nk, nv, nm, plan_end, release)
    n_tl = _merge_runs(nk, nv, nm, ok, ov)
    return (
        2,
        alloc_k[:n_alloc].copy(),
        alloc_v[:n_alloc].copy(),
        ok[:n_tl].copy(),
        ov[:n_tl].copy(),
        plan_end,
        float(real_end),
    )
