"""The one-pass scale-up pricing of ElasticFlow's leftover pass against the two helpers it
stands for, and its certificates against pricing afresh after a timeline edit."""

from __future__ import annotations

import random

import pytest

from reprise.errors import SimulationError
from reprise.policies.elasticflow.planner import (
    ScalingCurve,
    Timeline,
    TimelineEdit,
    first_break_given_back,
    first_key_after,
    price_fixed_start,
    timeline_without,
)
from reprise.policies.elasticflow.pricing import (
    SortedTimeline,
    plan_is_integral,
    price_given_back,
    still_holds,
)
from reprise.sim.timeline import merge_runs
from reprise.sim.timing import align

N = 64


def _curve(rng: random.Random) -> ScalingCurve:
    levels = rng.choice(((1, 2, 4, 8), (1, 2, 4, 8, 16), (2, 4, 8), (1, 2, 4, 8, 16, 32)))
    rates = {g: rng.uniform(0.5, 3.0) * g ** rng.uniform(0.5, 1.0) for g in levels}
    if rng.random() < 0.05:
        del rates[rng.choice(levels)]  # an empty profile cell
    return ScalingCurve(levels, rates, max_gpu=levels[-1])


def _case(rng: random.Random, whole: bool) -> tuple[Timeline, dict[float, int], float, float, int]:
    """(timeline, plan, plan end, planning time, GPUs the plan holds now)."""
    t0: float = rng.choice((0, 3600, 52897))
    held = rng.choice((1, 2, 4, 8))
    # a plan: `held` now, maybe fewer later, ending at `end`
    plan: dict[float, int] = {t0: held}
    t = t0
    for _ in range(rng.randint(0, 2)):
        t += rng.choice((600, 1800, 7200)) + (0 if whole else rng.choice((0, 0.5)))
        plan[t] = rng.randint(0, held)
    end = t + rng.choice((60, 3000, 20000)) + (0 if whole else rng.choice((0, 0.25)))
    # the free-GPU timeline with the plan's GPUs taken (so giving them back stays <= N)
    low = rng.choice((0, 8, 24, 40))
    timeline: Timeline = {t0: rng.randint(0, N - held)}
    t = t0
    for _ in range(rng.randint(1, 40)):
        t += rng.choice((60, 240, 600, 1800, 3600)) + (0 if whole else rng.choice((0, 0.5)))
        timeline[t] = rng.randint(min(low, N - held), N - held)
    return merge_runs(timeline), plan, end, t0, held


def _reference(
    curve: ScalingCurve,
    iters: float,
    deadline: float,
    t0: float,
    timeline: Timeline,
    plan: dict[float, int],
    end: float,
    gpus: int,
    slot: int,
) -> tuple[str, float, float, float | None] | None:
    try:
        given_back = timeline_without(timeline, plan, end, N, align(t0, deadline, slot))
    except SimulationError:
        return None
    priced = price_fixed_start(curve, iters, deadline, t0, given_back, N, slot, gpus)
    if priced is None:
        return None
    return (*priced, first_key_after(given_back, t0))


def _draw(rng: random.Random, whole: bool) -> tuple:
    curve = _curve(rng)
    timeline, plan, end, t0, held = _case(rng, whole)
    gpus = curve.next_level(held)
    if gpus == held:
        gpus = curve.levels[-1]
    slot = rng.choice((60, 240))
    deadline = t0 + rng.choice((3000, 30000, 100000, 300000)) + rng.choice((0, 17))
    iters = rng.choice((rng.uniform(10, 1e4), rng.uniform(1e4, 1e6), float(rng.randint(1, 200000))))
    return curve, iters, deadline, t0, timeline, plan, end, gpus, slot


@pytest.mark.parametrize("seed", range(600))
def test_one_pass_price_equals_the_helpers(seed: int) -> None:
    rng = random.Random(seed)
    whole = seed % 3 != 0
    curve, iters, deadline, t0, timeline, plan, end, gpus, slot = _draw(rng, whole)
    fast = price_given_back(
        curve, iters, deadline, t0, SortedTimeline(timeline), plan, end, N, slot, gpus
    )
    expected = _reference(curve, iters, deadline, t0, timeline, plan, end, gpus, slot)
    if fast is None:
        return  # the caller then takes the helpers' path itself
    assert fast[:4] == expected
    assert fast[4] is None or (whole and plan_is_integral(plan, end))


def test_most_prices_are_decided_in_one_pass() -> None:
    decided = certified = 0
    for seed in range(400):
        rng = random.Random(seed)
        drawn = _draw(rng, whole=True)
        curve, iters, deadline, t0, timeline, plan, end, gpus, slot = drawn
        fast = price_given_back(
            curve, iters, deadline, t0, SortedTimeline(timeline), plan, end, N, slot, gpus
        )
        if _reference(curve, iters, deadline, t0, timeline, plan, end, gpus, slot) is not None:
            decided += fast is not None
            certified += fast is not None and fast[4] is not None
    assert decided > 200
    assert certified > 50


@pytest.mark.parametrize("offset", [0.0, 1e-7, -1e-7, 1.0, -1.0])
def test_thresholds_on_a_key_are_left_to_the_exact_loops(offset: float) -> None:
    """Work that ends exactly at (or a hair off) a breakpoint: the shortcut must not guess."""
    curve = ScalingCurve((1, 2, 4), {1: 1.0, 2: 2.0, 4: 4.0}, max_gpu=4)
    timeline = {0: 8, 600: 40, 1200: 48, 3000: 56}
    deadline = 6000
    # 2 GPUs now until 600 (1,200 iterations), then 1 GPU from 600 covers (6000 - 600)
    # exactly, so the level search ends on a key
    iters = 1200 + 5400 * 1.0 + offset
    fast = price_given_back(
        curve, iters, deadline, 0, SortedTimeline(timeline), {0: 1}, 600, N, 60, 2
    )
    expected = _reference(curve, iters, deadline, 0, timeline, {0: 1}, 600, 2, 60)
    assert fast is None or fast[:4] == expected


def _edited(rng: random.Random, timeline: Timeline, t0: float) -> Timeline:
    """`timeline` after a grant-like edit: fewer free now, and some GPUs back earlier or a
    value changed somewhere later (integral keys)."""
    new = dict(timeline)
    new[t0] = max(0, new[t0] - rng.choice((1, 2, 4)))
    keys = sorted(new)
    if len(keys) > 2:
        k = rng.choice(keys[1:])
        shift = rng.choice((60, 600, 1800))
        for key in keys:
            if k - shift <= key < k:
                new[key] = min(N - 8, new[key] + rng.choice((0, 4, 8)))
        if rng.random() < 0.5:
            new[k - shift] = new.get(k - shift, new[max(x for x in keys if x < k)])
    return merge_runs(dict(sorted(new.items())))


def test_a_certified_price_still_holds_after_an_edit_it_allows() -> None:
    held = edited = 0
    for seed in range(400):
        rng = random.Random(seed)
        curve, iters, deadline, t0, timeline, plan, end, gpus, slot = _draw(rng, whole=True)
        before = price_given_back(
            curve, iters, deadline, t0, SortedTimeline(timeline), plan, end, N, slot, gpus
        )
        if before is None or before[4] is None or before[3] is None:
            continue
        after = _edited(rng, timeline, t0)
        d_al = align(t0, deadline, slot)
        edit = TimelineEdit(timeline, after)
        applies, brk = first_break_given_back(after, plan, end)
        if not (applies and brk == before[3]) or after[t0] + plan[t0] < gpus:
            continue  # the leftover pass re-prices (or skips) the job then
        if not still_holds(before[4], edit, SortedTimeline(after), before[3], d_al):
            continue
        fresh = _reference(curve, iters, deadline, t0, after, plan, end, gpus, slot)
        assert fresh is not None
        assert fresh[:3] == before[:3], seed
        held += 1
        edited += any(after.get(k) != timeline.get(k) for k in {*after, *timeline} - {t0})
    # the draw must exercise certificates that survive edits past the planning time
    assert held > 100
    assert edited > 30


def test_an_edit_in_the_window_of_the_end_voids_the_certificate() -> None:
    curve = ScalingCurve((1, 2, 4), {1: 1.0, 2: 2.0, 4: 4.0}, max_gpu=4)
    timeline = {0: 8, 600: 40, 1200: 48, 3000: 56}
    # 2 GPUs until 600, then 1 GPU from the split at 3000: finishes at 5800.5 (a margin)
    before = price_given_back(
        curve, 4000.5, 6000, 0, SortedTimeline(timeline), {0: 1}, 600, N, 60, 2
    )
    assert before is not None and before[4] is not None
    cert = before[4]
    # a new breakpoint inside the interval the job finishes in
    moved = merge_runs({**timeline, (cert.end_lo + cert.end_hi) // 2: 50})
    moved = dict(sorted(moved.items()))
    edit = TimelineEdit(timeline, moved)
    assert not still_holds(cert, edit, SortedTimeline(moved), before[3], 6000)
    # too few GPUs left where the edit lands
    starved = dict(timeline)
    starved[1200] = 0
    edit = TimelineEdit(timeline, starved)
    assert not still_holds(cert, edit, SortedTimeline(starved), before[3], 6000)


@pytest.mark.parametrize("seed", range(300))
def test_the_listed_given_back_timeline_equals_timeline_without(seed: int) -> None:
    from reprise.policies.elasticflow.pricing import _given_back

    rng = random.Random(seed)
    timeline, plan, end, t0, _ = _case(rng, whole=seed % 2 == 0)
    if seed % 5 == 0:
        plan = {t0 - 30: 1, **{k: v for k, v in plan.items() if k != t0}}  # before the timeline
    keys = sorted(timeline)
    until = rng.choice((t0, rng.choice(keys), keys[-1] + 100, (keys[0] + keys[-1]) / 2))
    listed = _given_back(keys, [timeline[k] for k in keys], plan, end, N, until)
    try:
        expected = timeline_without(timeline, plan, end, N, until)
    except SimulationError:
        assert listed is None
        return
    assert listed is not None
    assert dict(zip(*listed, strict=True)) == expected
    assert listed[0] == list(expected)
