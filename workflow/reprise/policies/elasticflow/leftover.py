"""ElasticFlow's leftover pass compiled (docs/policies/elasticflow.md#the-compiled-pass,
docs/scaling.md#elasticflow).

`distribute_compiled` makes the same grants, in the same order, with the same prices, plans and
counters as `_EfSim.distribute_plain`: the runnable jobs become rows of arrays for one pass
(`LeftoverRows`), leftover_kernel.py prices, sorts and picks them and plans most grants' offers;
the prices it cannot decide go to the Python planner (`price_by_planner`), as do the offers it
cannot plan (`offer_for`). The grants themselves are `_EfSim.take_grant`.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, NamedTuple, Protocol

import numpy as np

from reprise.policies.elasticflow import leftover_kernel as kernel
from reprise.policies.elasticflow.planner import (
    Allocation,
    Plan,
    ScalingCurve,
    is_ascending,
)
from reprise.policies.elasticflow.pricing import Certificate
from reprise.sim.timeline import Timeline
from reprise.sim.timing import align

if TYPE_CHECKING:
    from reprise.policies.elasticflow.policy import EfJob, _EfSim

_EXACT_INT = 2**53
"""Deadlines from here on (best-effort jobs' INT64_MAX): their offers are planned in Python
(leftover_kernel.py's docstring)."""


class CurveTable:
    """Every scaling curve of a run as rows of arrays: levels, rates (NaN where the profile has
    none), max GPUs and the fit table up to the cluster's GPUs."""

    def __init__(self, curves: list[ScalingCurve], num_gpus: int) -> None:
        self.row = {id(curve): i for i, curve in enumerate(curves)}
        width = max((len(c.levels) for c in curves), default=0) or 1
        self.levels = np.zeros((len(curves), width), dtype=np.int64)
        self.rates = np.full((len(curves), width), math.nan)
        self.n_levels = np.zeros(len(curves), dtype=np.int64)
        self.max_gpu = np.zeros(len(curves), dtype=np.int64)
        self.fits = np.zeros((len(curves), num_gpus + 1), dtype=np.int64)
        for i, curve in enumerate(curves):
            n = len(curve.levels)
            self.levels[i, :n] = curve.levels
            self.rates[i, :n] = [curve.rates.get(g, math.nan) for g in curve.levels]
            self.n_levels[i] = n
            self.max_gpu[i] = curve.max_gpu
            self.fits[i] = curve.fit_table(num_gpus)[: num_gpus + 1]


class LeftoverRows:
    """One pass's runnable jobs as rows (leftover_kernel.py's columns), the current timeline
    as arrays and the last grant's timeline edit."""

    def __init__(self, jobs: list[EfJob], curves: CurveTable, timeline: Timeline) -> None:
        self.jobs = jobs
        self.curves = curves
        n = len(jobs)
        width = max((len(job.alloc) for job in jobs), default=0) or 1
        self.ji = np.zeros((n, kernel.N_INT), dtype=np.int64)
        self.jf = np.zeros((n, kernel.N_FLOAT))
        self.jf[:, kernel.BREAK] = math.nan
        self.jf[:, kernel.FIXED_END] = math.nan
        self.ak = np.zeros((n, width))
        self.av = np.zeros((n, width), dtype=np.int64)
        self.offers: list[Plan | None] = [None] * n
        self.status = np.zeros(n, dtype=np.int64)
        self.order = np.arange(n, dtype=np.int64)
        for r, job in enumerate(jobs):
            self.ji[r, kernel.CURVE] = curves.row[id(job.curve)]
            self.ji[r, kernel.STAMP] = job.price_stamp
            self.ji[r, kernel.HUGE_DEADLINE] = abs(job.deadline) >= _EXACT_INT
            self.jf[r, kernel.ITER_LEFT] = job.iter_left
            self.jf[r, kernel.DEADLINE] = job.deadline
            self.load_plan(r)
        self.timeline = timeline
        self.tk, self.tv = _arrays(timeline)
        self.edit: tuple[np.ndarray, np.ndarray, bool] | None = None

    def load_plan(self, r: int) -> None:
        """Copy the job's GPUs, next level, plan and its GPU-seconds into row `r`."""
        job = self.jobs[r]
        keys = list(job.alloc)
        if len(keys) > self.ak.shape[1]:
            grow = len(keys) - self.ak.shape[1]
            self.ak = np.pad(self.ak, ((0, 0), (0, grow)))
            self.av = np.pad(self.av, ((0, 0), (0, grow)))
        self.ak[r, : len(keys)] = keys
        self.av[r, : len(keys)] = list(job.alloc.values())
        ji = self.ji[r]
        ji[kernel.GPUS] = job.gpus
        ji[kernel.NEXT] = job.next_gpus
        ji[kernel.ALEN] = len(keys)
        ji[kernel.ASC] = is_ascending(job.alloc)
        self.jf[r, kernel.END] = job.end_time
        self.jf[r, kernel.OWN] = job.own_gpu_time

    def replace_timeline(
        self, timeline: Timeline, tk: np.ndarray | None = None, tv: np.ndarray | None = None
    ) -> None:
        """A grant's new timeline (with its keys and values where the caller has them), and
        the edit from the one before (`TimelineEdit`)."""
        if tk is None or tv is None:
            tk, tv = _arrays(timeline)
        self.edit = kernel.timeline_edit(self.tk, self.tv, tk, tv)
        self.timeline, self.tk, self.tv = timeline, tk, tv

    def write_back(self) -> None:
        """Each job's price fields as the Python pass leaves them."""
        ji, jf = self.ji, self.jf
        for r, job in enumerate(self.jobs):
            job.marginal = float(jf[r, kernel.MARGINAL])
            job.price_stamp = int(ji[r, kernel.STAMP])
            job.offer = self.offers[r] if ji[r, kernel.OFFER] else None
            job.price_break = _optional(jf[r, kernel.BREAK])
            job.price_fixed_end = _optional(jf[r, kernel.FIXED_END])
            job.price_cert = (
                Certificate(
                    int(ji[r, kernel.LEVEL]),
                    *(float(x) for x in jf[r, kernel.SPLIT_LO : kernel.END_HI + 1]),
                )
                if ji[r, kernel.CERT]
                else None
            )


class Grant(Protocol):
    """What a grant reads of its plan (a planner's `Plan` or a `CompiledOffer`)."""

    @property
    def alloc(self) -> Allocation: ...
    @property
    def timeline(self) -> Timeline: ...
    @property
    def end(self) -> float: ...
    @property
    def real_end(self) -> float: ...


class CompiledOffer(NamedTuple):
    """A grant's plan from `leftover_kernel.fixed_start_offer`: what the grant reads of the
    planner's `Plan` (its compressed plan and timeline, its ends), and the timeline's arrays."""

    alloc: Allocation
    timeline: Timeline
    end: float
    real_end: float
    tk: np.ndarray
    tv: np.ndarray


def _compiled_offer(sim: _EfSim, rows: LeftoverRows, r: int, now: float) -> CompiledOffer | None:
    """`sim.offer_for(job, now)` from the kernel, or None where the Python planner must make it
    (the kernel declines, or the job's deadline is 2**53 or later)."""
    ji = rows.ji[r]
    if ji[kernel.HUGE_DEADLINE]:
        return None
    job = rows.jobs[r]
    curves = rows.curves
    c = ji[kernel.CURVE]
    # floats and ints as such: numba compiles one version per combination of argument types
    branch, ak, av, tk, tv, plan_end, real_end = kernel.fixed_start_offer(
        rows.tk, rows.tv, rows.ak[r], rows.av[r], int(ji[kernel.ALEN]), float(job.end_time),
        float(job.iter_left), float(job.deadline), float(now), int(job.next_gpus),
        curves.levels[c], curves.rates[c], int(curves.n_levels[c]), int(curves.max_gpu[c]),
        curves.fits[c], int(sim.n), int(sim.slot),
    )  # fmt: skip
    if not branch:
        return None
    return CompiledOffer(
        dict(zip(ak.tolist(), av.tolist(), strict=True)),
        dict(zip(tk.tolist(), tv.tolist(), strict=True)),
        plan_end,
        real_end,
        tk,
        tv,
    )


def _arrays(timeline: Timeline) -> tuple[np.ndarray, np.ndarray]:
    n = len(timeline)
    return (
        np.fromiter(timeline.keys(), dtype=np.float64, count=n),
        np.fromiter(timeline.values(), dtype=np.int64, count=n),
    )


def _optional(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def _price(sim: _EfSim, rows: LeftoverRows, free: int, now: float, only_growable: bool) -> None:
    """One pricing pass (`_EfSim.price` for each row): the kernel, then the Python planner for
    the rows it hands back."""
    edit = rows.edit
    if edit is None:
        empty = np.empty(0)
        starts, ends, everywhere, has_edit = empty, empty, True, False
    else:
        starts, ends, everywhere = edit
        has_edit = True
    curves = rows.curves
    calls, left = kernel.price_rows(
        rows.order, only_growable, int(free), float(now), int(sim.stamp), has_edit, starts, ends,
        everywhere, rows.tk, rows.tv, int(sim.n), int(sim.slot), rows.ji, rows.jf, rows.ak, rows.av,
        curves.levels, curves.rates, curves.n_levels, curves.max_gpu, curves.fits, rows.status,
    )  # fmt: skip
    sim.marginal_calls += calls
    if not left:
        return
    ji, jf = rows.ji, rows.jf
    for r in np.flatnonzero(rows.status == kernel.NEEDS_PLANNER).tolist():
        job = rows.jobs[r]
        sim.price_by_planner(job, now, align(now, job.deadline, sim.slot))
        jf[r, kernel.MARGINAL] = job.marginal
        ji[r, kernel.STAMP] = job.price_stamp
        ji[r, kernel.CERT] = 0
        jf[r, kernel.BREAK] = math.nan if job.price_break is None else job.price_break
        jf[r, kernel.FIXED_END] = math.nan if job.price_fixed_end is None else job.price_fixed_end
        rows.offers[r] = job.offer
        ji[r, kernel.OFFER] = job.offer is not None


def _sort_and_pick(rows: LeftoverRows, free: int) -> int:
    picked = kernel.sort_and_pick(rows.order, rows.ji, rows.jf, int(free))
    if picked != -2:
        return int(picked)
    # a NaN marginal: Python's own sort, whose comparisons with NaN the kernel does not copy
    marginals = rows.jf[:, kernel.MARGINAL].tolist()
    order = sorted(rows.order.tolist(), key=marginals.__getitem__, reverse=True)
    rows.order[:] = order
    return int(kernel.pick(rows.order, rows.ji, int(free)))


def distribute_compiled(sim: _EfSim, curves: CurveTable, now: float, free: int) -> None:
    """`_EfSim.distribute_plain` after its set-up (next levels, own GPU-time, the free count
    checked, the stamp advanced), with the pricing and sorting compiled."""
    rows = LeftoverRows(sim.runnable, curves, sim.timeline)
    _price(sim, rows, free, now, only_growable=False)
    picked = _sort_and_pick(rows, free)
    while free > 0:
        granted = picked >= 0
        if granted:
            job = rows.jobs[picked]
            offer = rows.offers[picked] if rows.ji[picked, kernel.OFFER] else None
            made = None if offer is not None else _compiled_offer(sim, rows, picked, now)
            if made is not None:
                rows.replace_timeline(made.timeline, made.tk, made.tv)
                free = sim.take_grant(job, made, now, free)
            else:
                if offer is None:
                    offer = sim.offer_for(job, now)
                rows.replace_timeline(offer.timeline)
                free = sim.take_grant(job, offer, now, free)
            rows.ji[picked, kernel.STAMP] = -1
            rows.offers[picked] = None
            rows.ji[picked, kernel.OFFER] = 0
            rows.load_plan(picked)
        else:
            rows.edit = None
        # quirk: re-priced (with the new free count) even once nothing is left to give
        sim.stamp += 1
        _price(sim, rows, free, now, only_growable=True)
        picked = _sort_and_pick(rows, free)
        if not granted:
            break
    rows.write_back()
    sim.runnable[:] = [rows.jobs[r] for r in rows.order.tolist()]
