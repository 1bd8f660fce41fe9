"""Shortcuts that ElasticFlow's leftover pass uses to skip re-planning, against the literal
helpers they stand for, on random timelines and plans."""

from __future__ import annotations

import random

import pytest

from reprise.errors import SimulationError
from reprise.policies.elasticflow.planner import (
    ScalingCurve,
    Timeline,
    TimelineEdit,
    _timeline_without_literal,
    first_break_given_back,
    first_key_after,
    plan_with_fixed_start,
    price_fixed_start,
    timeline_without,
    value_at,
)
from reprise.sim.timeline import merge_runs
from reprise.sim.timing import align

N = 16


def _timeline(rng: random.Random, t0: float, low: int = 0) -> Timeline:
    timeline: Timeline = {t0: rng.randint(low, N)}
    t = t0
    for _ in range(rng.randint(0, 8)):
        t += rng.choice((1, 30, 60, 90.5))
        timeline[t] = rng.randint(low, N)
    return merge_runs(timeline)


def _differ_literal(old: Timeline, new: Timeline, lo: float, hi: float) -> bool:
    points = [lo, *(k for k in sorted(set(old) | set(new)) if lo <= k <= hi)]
    return any(value_at(old, t, -1) != value_at(new, t, -1) for t in points)


@pytest.mark.parametrize("seed", range(200))
def test_an_edit_touches_exactly_the_windows_where_the_timelines_differ(seed: int) -> None:
    rng = random.Random(seed)
    old = _timeline(rng, 0)
    new = dict(old) if seed % 3 == 0 else _timeline(rng, 0)
    if seed % 5 == 0:
        # an edit of the early part only
        new = merge_runs({**old, 0: old[0] - 1 if old[0] else 1})
    edit = TimelineEdit(old, new)
    for _ in range(20):
        lo = rng.choice([*old, *new, rng.uniform(0, 600)])
        hi = lo + rng.choice((0, 1, 30, 60, 300, 1000))
        assert edit.touches(lo, hi) == _differ_literal(old, new, lo, hi)


def test_an_edit_makes_no_claim_on_different_starts() -> None:
    assert TimelineEdit({0: 1, 60: 2}, {60: 2}).touches(1000, 2000)


@pytest.mark.parametrize("seed", range(300))
def test_first_break_equals_the_given_back_timeline(seed: int) -> None:
    rng = random.Random(seed)
    t0 = rng.choice((0, 120))
    plan: dict[float, int] = {t0: rng.randint(0, 4)}
    t = t0
    for _ in range(rng.randint(0, 4)):
        t += rng.choice((30, 60, 45.5))
        plan[t] = rng.randint(0, 4)
    end = t + rng.choice((0, 1, 60, 200)) if seed % 4 else t0 + rng.choice((1, 30))
    held = max(plan.values())
    timeline = _timeline(rng, t0)
    # the plan's GPUs must be free to give back: keep the timeline under N - held
    timeline = merge_runs({k: min(v, N - held) for k, v in timeline.items()})
    full = timeline_without(timeline, plan, end, N)
    until = rng.choice((t0, t0 + 60, t0 + 500))
    short = timeline_without(timeline, plan, end, N, until)
    beyond = [k for k in full if k > until]
    assert list(short.items()) == list(full.items())[: len(full) - max(len(beyond) - 1, 0)]
    applies, key = first_break_given_back(timeline, plan, end)
    assert applies
    assert key == first_key_after(timeline_without(timeline, plan, end, N), t0)


def test_first_break_makes_no_claim_on_unsorted_plans() -> None:
    assert first_break_given_back({0: 4}, {60: 1, 0: 2}, 120) == (False, None)


def _curve(rng: random.Random) -> ScalingCurve:
    levels = rng.choice(((1, 2, 4, 8), (1, 2, 4, 8, 16), (2, 4, 8), (1, 4, 2, 8)))
    rates = {g: rng.uniform(0.2, 1.5) * g ** rng.uniform(0.3, 1.0) for g in levels}
    if rng.random() < 0.1:
        del rates[rng.choice(levels)]  # an empty profile cell
    return ScalingCurve(levels, rates, max_gpu=rng.choice((8, 16)))


@pytest.mark.parametrize("seed", range(400))
def test_pricing_equals_the_planners_gpu_time(seed: int) -> None:
    rng = random.Random(seed)
    curve = _curve(rng)
    t0 = rng.choice((0, 3600))
    slot = rng.choice((60, 240))
    timeline = _timeline(rng, t0, low=rng.choice((0, 2)))
    gpus = rng.choice(curve.levels)
    iters = rng.choice((rng.uniform(1, 100), rng.uniform(100, 20000), float(rng.randint(1, 5000))))
    deadline = t0 + rng.choice((30, 200, 1000, 5000, 50000))
    priced = price_fixed_start(curve, iters, deadline, t0, timeline, N, slot, gpus)
    # the pricing reads nothing past the first key after the aligned deadline
    d_al = align(t0, deadline, slot)
    keys = list(timeline)
    cut = next((i for i, k in enumerate(keys) if k > d_al), len(keys) - 1)
    prefix = {k: timeline[k] for k in keys[: cut + 1]}
    assert price_fixed_start(curve, iters, deadline, t0, prefix, N, slot, gpus) == priced
    try:
        plan = plan_with_fixed_start(curve, iters, deadline, t0, timeline, N, slot, gpus)
    except SimulationError:
        assert priced is None
        return
    if plan.branch in ("fixed", "share"):
        assert priced == (plan.branch, plan.gpu_time, plan.end)
    else:
        assert priced is None


@pytest.mark.parametrize("seed", range(300))
def test_giving_a_plan_back_equals_upstreams_delta_passes(seed: int) -> None:
    rng = random.Random(seed)
    t0 = rng.choice((0, 120))
    plan: dict[float, int] = {t0 + rng.choice((0, 0, 15)): rng.randint(0, 4)}
    t = next(iter(plan))
    for _ in range(rng.randint(0, 4)):
        t += rng.choice((30, 60, 45.5, 7))
        plan[t] = rng.randint(0, 4)
    end = t + rng.choice((0, 1, 60, 200, 333))
    timeline = merge_runs({k: min(v, N - 4) for k, v in _timeline(rng, t0).items()})
    assert timeline_without(timeline, plan, end, N) == _timeline_without_literal(
        timeline, plan, end, N
    )
