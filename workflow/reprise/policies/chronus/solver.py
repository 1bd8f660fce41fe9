"""Lease packing for the Chronus baseline: latest-first greedy packing and the lease MIP (HiGHS)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.optimize import Bounds, LinearConstraint, milp
from scipy.sparse import coo_matrix

IntArray = npt.NDArray[np.int64]
Plan = npt.NDArray[np.int8]
"""One job's lease plan: entry t is 1 when the job holds lease t (0 = the next lease)."""

OPTION_VALUE = 10
"""Value of a job's (single) deadline option in the MIP objective (upstream MAX_EXPECT_VALUE)."""


@dataclass(slots=True)
class LeaseItem:
    """One deadline option of one accepted job, as the packers see it."""

    demand: int
    """GPUs per lease, rounded up to a power-of-two bin (3-4 -> 4, 5-7 -> 8)."""
    leases: int
    """Leases still needed."""
    horizon: int
    """Leases before the deadline, counted from the next lease (may be <= 0)."""
    owner: int
    """The job's trace index; an owner is packed at most once per pass."""


def capacity_vector(base: IntArray, length: int, full: int) -> IntArray:
    """Free GPUs in the first `length` leases: `base` where known, a whole cluster beyond it."""
    out = np.full(max(length, 0), full, dtype=np.int64)
    known = min(len(base), len(out))
    out[:known] = base[:known]
    return out


def take_latest(free: IntArray, item: LeaseItem) -> IntArray | None:
    """Reserve the item's leases latest-first among those with enough room; None if impossible.

    On success `free` is debited; on failure it is left unchanged (upstream either stops at the
    first failure or rolls the partial reservation back, both equivalent to not touching it).
    """
    if item.horizon <= 0:
        return None
    if item.leases <= 0:
        # quirk: upstream tests "found == needed" only after looking at the latest lease, so a
        # zero-lease item succeeds only when that lease has no room for it
        if free[item.horizon - 1] >= item.demand:
            return None
        return np.empty(0, dtype=np.int64)
    fits = np.flatnonzero(free[: item.horizon] >= item.demand)
    if len(fits) < item.leases:
        return None
    chosen = fits[-item.leases :]
    free[chosen] -= item.demand
    return chosen


def _check_order(items: Sequence[LeaseItem]) -> list[int]:
    """Largest bins first, then least slack, then the latest deadline (stable)."""
    return sorted(
        range(len(items)),
        key=lambda k: (-items[k].demand, items[k].horizon - items[k].leases, -items[k].horizon),
    )


def packable(items: Sequence[LeaseItem], base: IntArray, full: int) -> bool:
    """Upstream's admission test: can every item be packed latest-first on top of `base`?"""
    if not items:
        return True
    free = capacity_vector(base, max(it.horizon for it in items), full)
    seen: set[int] = set()
    ok = False
    for k in _check_order(items):
        item = items[k]
        if item.owner in seen:
            continue
        seen.add(item.owner)
        ok = take_latest(free, item) is not None
        if not ok:
            break
    return ok


def select_latest_first(items: Sequence[LeaseItem], base: IntArray, full: int) -> list[Plan | None]:
    """Upstream's no-solver lease planning: a plan (length = horizon) per item, None if it failed.

    Items are taken by (-value, -bins, slack, -horizon); a failed item is rolled back and the
    next one is tried.
    """
    plans: list[Plan | None] = [None] * len(items)
    if not items:
        return plans
    free = capacity_vector(base, max(it.horizon for it in items), full)
    placed: set[int] = set()
    order = sorted(
        range(len(items)),
        key=lambda k: (
            -OPTION_VALUE,
            -items[k].demand,
            items[k].horizon - items[k].leases,
            -items[k].horizon,
        ),
    )
    for k in order:
        item = items[k]
        if item.owner in placed:
            continue
        chosen = take_latest(free, item)
        if chosen is None:
            continue
        plan = np.zeros(item.horizon, dtype=np.int8)
        plan[chosen] = 1
        plans[k] = plan
        placed.add(item.owner)
    return plans


@dataclass(slots=True)
class MipResult:
    """Outcome of one lease MIP. `rows` holds X[i, :horizon_i] per item, None on failure."""

    status: str
    """'optimal', 'time_limit' (incumbent used), 'time_limit_no_solution', 'infeasible' or
    'failed' (any other solver status)."""
    rows: list[Plan] | None
    binaries: int
    """X binaries of upstream's formulation (items x horizons, fixed zeros left out)."""
    solved_vars: int
    """Variables of the reduced model (what HiGHS sees when it is called)."""
    seconds: float


def solve_lease_mip(
    items: Sequence[LeaseItem],
    capacity: IntArray,
    maximize_now: bool,
    time_limit: float,
    closed_form: bool = True,
) -> MipResult:
    """Solve upstream's lease MIP exactly, with HiGHS (scipy.optimize.milp).

    Upstream's model: binaries X[i, t] (item i holds lease t < horizon_i) and S[i] (item
    selected); maximise sum_i 10 S[i] + sigma * sum_i (bins_i / max capacity) X[i, 0] with
    sigma = +1 or -1, subject to sum_t X[i, t] = leases_i S[i], sum_i bins_i X[i, t] <=
    capacity_t, and S[i] = 1 (each job has a single deadline option).

    Solved as an equivalent smaller model: a capacity row that cannot bind (all items alive at
    t fit together) is dropped, and for t >= 1 the leases without a capacity row are identical
    for an item, so one integer Y[i] (how many of them item i takes) replaces their binaries.
    The Y[i] leases are then laid out latest-first. HiGHS' presolve needs seconds on the full
    model (thousands of leases per item) even when it reduces it to nothing. A model left
    with no capacity row at all has a unique optimum in closed form, used unless
    `closed_form` is False (tests compare it with HiGHS').
    """
    m = _reduced_model(items, capacity)
    top = float(capacity.max()) if len(capacity) else 0.0
    if top <= 0:
        # upstream divides by the largest capacity and takes its fallback on the error
        return MipResult("failed", None, m.binaries, 0, 0.0)
    if closed_form:
        separable = _separable_solution(m, maximize_now)
        if separable is not None:
            return MipResult("optimal", _plans(m, separable), m.binaries, m.n_var, 0.0)
    sigma = 1.0 if maximize_now else -1.0
    gain = np.zeros(m.n_var)
    gain[m.c_s] = OPTION_VALUE
    gain[m.c_now] = sigma * m.demand[m.now_item] / top
    began = time.perf_counter()
    res = milp(
        -gain,  # milp minimises
        integrality=np.ones(m.n_var),
        bounds=Bounds(0, m.var_upper),
        constraints=_constraints(m),
        options={"time_limit": time_limit, "disp": False},
    )
    seconds = time.perf_counter() - began
    if res.x is None:
        if res.status == 1:
            status = "time_limit_no_solution"
        elif res.status == 2:
            status = "infeasible"
        else:
            status = "failed"
        return MipResult(status, None, m.binaries, m.n_var, seconds)
    status = "optimal" if res.status == 0 else "time_limit"
    x = np.rint(np.asarray(res.x)).astype(np.int64)
    if not bool((x[m.c_s] == 1).all()):
        # every item is its job's only option, so a solution always selects it
        return MipResult("failed", None, m.binaries, m.n_var, seconds)
    return MipResult(status, _plans(m, x), m.binaries, m.n_var, seconds)


@dataclass(frozen=True)
class _ReducedModel:
    """The reduced lease MIP's layout: which leases keep a capacity row, and the columns
    [X0 | X(tight leases) | Y | S] with the item and lease each stands for."""

    n: int
    horizon: IntArray
    leases: IntArray
    demand: IntArray
    binaries: int
    """Binaries of upstream's full model (reported, not built)."""
    cap: IntArray
    binding: npt.NDArray[np.bool_]
    loose: IntArray
    now_item: IntArray
    x_item: IntArray
    x_lease: IntArray
    y_item: IntArray
    n_loose: IntArray
    c_now: IntArray
    c_x: IntArray
    c_y: IntArray
    c_s: IntArray
    n_var: int
    var_upper: npt.NDArray[np.float64]


def _reduced_model(items: Sequence[LeaseItem], capacity: IntArray) -> _ReducedModel:
    n = len(items)
    horizon = np.array([max(it.horizon, 0) for it in items], dtype=np.int64)
    leases = np.array([it.leases for it in items], dtype=np.int64)
    demand = np.array([it.demand for it in items], dtype=np.int64)
    span = int(horizon.max()) if n else 0
    cap = np.full(span, np.iinfo(np.int64).max // 4, dtype=np.int64)
    known = min(span, len(capacity))
    cap[:known] = capacity[:known]

    # load_t = GPUs if every item alive at lease t held it
    ends = np.zeros(span + 1, dtype=np.int64)
    np.add.at(ends, horizon, demand)
    load = np.cumsum(ends[::-1])[::-1][1:]
    binding = load > cap
    tight = np.flatnonzero(binding[1:]) + 1
    loose = np.flatnonzero(~binding[1:]) + 1

    now_item = np.flatnonzero(horizon > 0)
    n_now = len(now_item)
    n_tight = np.searchsorted(tight, horizon, side="left").astype(np.int64)
    n_loose = np.maximum(horizon - 1, 0) - n_tight
    n_x = int(n_tight.sum())
    x_item = np.repeat(np.arange(n, dtype=np.int64), n_tight)
    first = np.zeros(n, dtype=np.int64)
    if n > 1:
        first[1:] = np.cumsum(n_tight)[:-1]
    x_lease = tight[np.arange(n_x, dtype=np.int64) - np.repeat(first, n_tight)]
    y_item = np.flatnonzero(n_loose > 0)
    n_y = len(y_item)
    c_y = n_now + n_x + np.arange(n_y, dtype=np.int64)
    n_var = n_now + n_x + n_y + n
    var_upper = np.ones(n_var)
    var_upper[c_y] = n_loose[y_item]
    return _ReducedModel(
        n=n,
        horizon=horizon,
        leases=leases,
        demand=demand,
        binaries=int(horizon.sum()),
        cap=cap,
        binding=binding,
        loose=loose,
        now_item=now_item,
        x_item=x_item,
        x_lease=x_lease,
        y_item=y_item,
        n_loose=n_loose,
        c_now=np.arange(n_now, dtype=np.int64),
        c_x=n_now + np.arange(n_x, dtype=np.int64),
        c_y=c_y,
        c_s=n_now + n_x + n_y + np.arange(n, dtype=np.int64),
        n_var=n_var,
        var_upper=var_upper,
    )


def _separable_solution(m: _ReducedModel, maximize_now: bool) -> IntArray | None:
    """The reduced model's unique optimum when no capacity row binds, else None (-> HiGHS).

    Without capacity rows the items are independent: item i takes X0[i] of lease 0 and Y[i] of
    its other leases, X0 + Y = leases, Y <= horizon - 1. Each X0 has a non-zero objective
    weight (sigma * bins / top), so the optimum is unique: run now whenever the leases allow
    it (maximise) or whenever the later leases suffice (minimise). Every other case (an
    infeasible item, a zero weight, so ties) is left to HiGHS, as is any model with a row.
    Every lease MIP of the figures' runs counted so far is of this kind (docs/scaling.md#chronus).
    """
    if m.binding.any():
        return None
    leases, horizon = m.leases, m.horizon
    if (leases < 0).any() or (leases > np.maximum(horizon, 0)).any():
        return None
    if (m.demand[m.now_item] <= 0).any():
        return None
    now_leases = leases[m.now_item]
    if maximize_now:
        x0 = (now_leases >= 1).astype(np.int64)
    else:
        x0 = (now_leases >= horizon[m.now_item]).astype(np.int64)
    taken_now = np.zeros(m.n, dtype=np.int64)
    taken_now[m.now_item] = x0
    x = np.zeros(m.n_var, dtype=np.int64)
    x[m.c_now] = x0
    x[m.c_y] = leases[m.y_item] - taken_now[m.y_item]
    x[m.c_s] = 1
    return x


def _constraints(m: _ReducedModel) -> LinearConstraint:
    """Rows: [0, n) lease counts, then one capacity row per binding lease, then S[i] = 1."""
    n, span = m.n, len(m.cap)
    row_of_lease = np.full(span, -1, dtype=np.int64)
    bound_leases = np.flatnonzero(m.binding)
    row_of_lease[bound_leases] = n + np.arange(len(bound_leases), dtype=np.int64)
    n_cap = len(bound_leases)
    now_rows = row_of_lease[0] if span and m.binding[0] else -1
    n_now, n_x, n_y = len(m.c_now), len(m.c_x), len(m.c_y)
    parts_r = [m.now_item, m.x_item, m.y_item, np.arange(n), row_of_lease[m.x_lease]]
    parts_c = [m.c_now, m.c_x, m.c_y, m.c_s, m.c_x]
    parts_v = [
        np.ones(n_now),
        np.ones(n_x),
        np.ones(n_y),
        -m.leases.astype(float),
        m.demand[m.x_item].astype(float),
    ]
    if now_rows >= 0:
        parts_r.append(np.full(n_now, now_rows, dtype=np.int64))
        parts_c.append(m.c_now)
        parts_v.append(m.demand[m.now_item].astype(float))
    parts_r.append(n + n_cap + np.arange(n))
    parts_c.append(m.c_s)
    parts_v.append(np.ones(n))
    matrix = coo_matrix(
        (np.concatenate(parts_v), (np.concatenate(parts_r), np.concatenate(parts_c))),
        shape=(2 * n + n_cap, m.n_var),
    ).tocsr()
    lower = np.concatenate([np.zeros(n), np.full(n_cap, -np.inf), np.ones(n)])
    upper = np.concatenate([np.zeros(n), m.cap[bound_leases].astype(float), np.ones(n)])
    return LinearConstraint(matrix, lower, upper)


def _plans(m: _ReducedModel, x: IntArray) -> list[Plan]:
    """Each item's lease plan from a solution; its Y[i] loose leases laid out latest-first."""
    n, horizon = m.n, m.horizon
    start = np.zeros(n, dtype=np.int64)
    if n > 1:
        start[1:] = np.cumsum(horizon)[:-1]
    flat = np.zeros(m.binaries, dtype=np.int8)
    flat[start[m.now_item]] = x[m.c_now]
    flat[start[m.x_item] + m.x_lease] = x[m.c_x]
    for k, i in enumerate(m.y_item.tolist()):
        take = int(x[m.c_y[k]])
        if take:
            own = m.loose[: np.searchsorted(m.loose, horizon[i])]
            flat[start[i] + own[-take:]] = 1
    return [flat[a : a + h] for a, h in zip(start.tolist(), horizon.tolist(), strict=True)]
