"""The Minimum-Satisfactory-Share planner and its timeline helpers (docs/engine.md#timeline,
docs/policies/elasticflow.md#planner).

Every expected value below was derived by hand, step by step, from upstream's
`ef_sim_allocation` / `get_marginal` / `utils` code (a linear toy job: rate = GPUs it/s, levels
1, 2, 4, 8, cluster of 8 GPUs, slot 60, planning at t0 = 0).
"""

from __future__ import annotations

import pytest

from reprise.data.traces import INT64_MAX
from reprise.errors import SimulationError
from reprise.policies.elasticflow.planner import (
    ScalingCurve,
    Timeline,
    allocation_gpu_time,
    plan_job,
    plan_with_fixed_start,
    timeline_without,
    value_at,
)
from reprise.sim.timeline import merge_runs

N = 8
SLOT = 60
LINEAR = ScalingCurve((1, 2, 4, 8), {1: 1.0, 2: 2.0, 4: 4.0, 8: 8.0}, max_gpu=8)

# (alloc, end, real_end, timeline, gpu_time, meets_deadline, branch)
Summary = tuple[dict[float, int], float, float, Timeline, float, bool, str]


def test_levels_follow_column_order_and_the_cap() -> None:
    curve = ScalingCurve((1, 2, 4), {1: 3.0, 2: 1.0, 4: 2.0}, max_gpu=4)  # non-monotone rates
    assert [curve.next_level(g) for g in (0, 1, 2, 4)] == [1, 2, 4, 4]
    assert curve.next_level(3) == 3  # not a level: no way up
    assert [curve.fit(f) for f in (0, 1, 3, 4, 64)] == [0, 1, 2, 4, 4]


def test_merge_runs_and_value_lookup() -> None:
    assert merge_runs({0: 2, 60: 2, 120: 3, 180: 3, 240: 2}) == {0: 2, 120: 3, 240: 2}
    timeline: Timeline = {0: 2, 120: 3}
    assert [value_at(timeline, t, N) for t in (-1, 0, 60, 120, 500)] == [N, 2, 2, 3, 3]


def test_gpu_time_counts_the_last_nonzero_segment_up_to_the_next_key() -> None:
    # quirk: a plan {0: 2, 120: 0} ending at 60 is charged 2 GPUs for 120 s, not 60 s
    assert allocation_gpu_time({0: 2, 120: 0}, 60) == 240
    assert allocation_gpu_time({0: 2}, 60) == 120
    assert allocation_gpu_time({0: 0, 300: 4}, 600) == 1200


def test_giving_a_plan_back() -> None:
    # job B of the planning example below, given back: the timeline after job A only
    assert timeline_without({0: 4, 300: 6, 600: 8}, {0: 2}, 600, N) == {0: 6, 300: 8}
    # the job's end and plan keys become breakpoints; nothing is given back from `end` on
    assert timeline_without({0: 3, 600: 8}, {0: 1, 120: 5}, 300, N) == {
        0: 4,
        120: 8,
        300: 3,
        600: 8,
    }


def test_giving_back_an_unsorted_plan_follows_upstream_delta_passes() -> None:
    # upstream adds (value - previous value) from each plan key on, in the plan's own order
    assert timeline_without({0: 5, 600: 8}, {300: 1, 0: 2}, 600, N) == {0: 6, 300: 7, 600: 8}


def _plan(timeline: Timeline, iters: float, deadline: int, fixed: int | None = None) -> Summary:
    before = dict(timeline)
    if fixed is None:
        plan = plan_job(LINEAR, iters, deadline, 0, timeline, N, SLOT)
    else:
        plan = plan_with_fixed_start(LINEAR, iters, deadline, 0, timeline, N, SLOT, fixed)
    assert timeline == before  # the input timeline is never modified
    return (
        plan.alloc,
        plan.end,
        plan.real_end,
        plan.timeline,
        plan.gpu_time,
        plan.meets_deadline,
        plan.branch,
    )


@pytest.mark.parametrize(
    ("timeline", "iters", "deadline", "expected"),
    [
        # 1 GPU cannot make it by the real deadline (400 it); 2 GPUs from the last breakpoint
        # (0) can; the end is slot-aligned relative to t0 and the GPUs come back there
        ({0: 8}, 600, 400, ({0: 2}, 300, 300, {0: 6, 300: 8}, 600, True, "share")),
        # a second job on that timeline: level 2 over [0, 300) and [300, 700 = real deadline)
        (
            {0: 6, 300: 8},
            1200,
            700,
            ({0: 2}, 600, 600, {0: 4, 300: 6, 600: 8}, 1200, True, "share"),
        ),
        # nothing free before 300: level 4 from the split point 300 on
        (
            {0: 0, 300: 8},
            1100,
            600,
            ({0: 0, 300: 4}, 600, 575, {0: 0, 300: 4, 600: 8}, 1200, True, "share"),
        ),
        # the previous level (2, capped to the 1 free GPU) before the split, level 4 after it
        (
            {0: 1, 300: 8},
            1100,
            600,
            ({0: 1, 300: 4}, 540, 500, {0: 0, 300: 4, 540: 8}, 1260, True, "share"),
        ),
        # no level is enough: the largest level up to the deadline, then the whole cluster
        # past the last breakpoint (real end 600 + 5200 / 8 = 1250, aligned 1260)
        ({0: 8}, 10000, 600, ({0: 8}, 1260, 1250, {0: 0, 1260: 8}, 10080, False, "overflow")),
        # failure that finishes inside the timeline after the deadline
        (
            {0: 8, 1200: 4, 1800: 8},
            6000,
            600,
            ({0: 8}, 780, 750, {0: 0, 780: 8, 1200: 4, 1800: 8}, 6240, False, "late"),
        ),
        # best-effort job: 0 GPUs until everything planned before it has ended, then 1 GPU
        (
            {0: 6, 300: 8},
            600,
            INT64_MAX,
            ({0: 0, 300: 1}, 900, 900, {0: 6, 300: 7, 900: 8}, 600, True, "share"),
        ),
    ],
)
def test_plan_job(timeline: Timeline, iters: float, deadline: int, expected: Summary) -> None:
    assert _plan(timeline, iters, deadline) == expected


@pytest.mark.parametrize(
    ("timeline", "iters", "deadline", "gpus", "expected"),
    [
        # finishes inside the reserved interval [0, 600)
        (
            {0: 4, 600: 8},
            600,
            1000,
            2,
            ({0: 2}, 300, 300, {0: 2, 300: 4, 600: 8}, 600, True, "fixed"),
        ),
        # does not: 1200 it done on [0, 600), then the normal planner from 600 (level 2 meets
        # the real deadline exactly: 800 it on [600, 1000))
        (
            {0: 4, 600: 8},
            2000,
            1000,
            2,
            ({0: 2}, 1020, 1000, {0: 2, 600: 6, 1020: 8}, 2040, True, "share"),
        ),
        # would finish inside the first interval (290) but after the deadline (280), and the
        # interval ends at the aligned deadline: failure plan, still with the fixed 2 GPUs
        # past the last breakpoint (upstream's `assigned_gpus` override)
        (
            {0: 4, 300: 8},
            580,
            280,
            2,
            ({0: 2}, 360, 310, {0: 2, 300: 6, 360: 8}, 720, False, "overflow"),
        ),
    ],
)
def test_plan_with_fixed_start(
    timeline: Timeline, iters: float, deadline: int, gpus: int, expected: Summary
) -> None:
    assert _plan(timeline, iters, deadline, fixed=gpus) == expected


def test_fixed_start_past_the_deadline_beyond_the_next_breakpoint_aborts_like_upstream() -> None:
    # finishes at 300 inside [0, 600) but the deadline is 250: the interval's progress
    # (1200 it) exceeds the work, and upstream's failure branch asserts on iter_left > 0
    with pytest.raises(SimulationError, match="no work left"):
        _plan({0: 4, 600: 8}, 600, 250, fixed=2)


def test_planning_time_must_be_a_breakpoint() -> None:
    with pytest.raises(SimulationError):
        plan_job(LINEAR, 100, 600, 60, {0: 8}, N, SLOT)
