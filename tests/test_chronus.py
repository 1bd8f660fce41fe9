"""Chronus baseline: lease packing, admission, the lease MIP, and golden runs against upstream."""

from __future__ import annotations

import csv
import random
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import Bounds, LinearConstraint, milp

from reprise.data.clusters import ClusterSpec
from reprise.data.generate import GeneratorParams, write_generated_trace
from reprise.data.profiles import ThroughputProfiles
from reprise.data.traces import INT64_MAX, TraceJob, load_trace
from reprise.errors import ConfigError
from reprise.policies import get_policy
from reprise.policies.chronus import policy as chronus
from reprise.policies.chronus.solver import (
    LeaseItem,
    MipResult,
    packable,
    select_latest_first,
    solve_lease_mip,
    take_latest,
)
from reprise.records.outcome import RoundSample
from reprise.sim.engine import AllocationChange
from reprise.sim.options import SimOptions

FIG10_LOG = (
    "ElasticFlow-artifact/plot_figure/logs/figure10/chronus/time-aware-with-lease_resource.csv"
)


def _job(idx: int, gpus: int, duration: int, deadline: int, submit: int = 0) -> TraceJob:
    return TraceJob(
        idx=idx,
        job_id=str(idx),
        submit_time=submit,
        iterations=1000,
        model="resnet50",
        deadline=deadline,
        batch_size=256,
        num_gpu=gpus,
        duration=duration,
        best_effort=False,
    )


# ---- constants and packing -----------------------------------------------------------------


def test_bins_and_estimate() -> None:
    assert [chronus.gpu_bin(g) for g in (1, 2, 3, 4, 5, 7, 8, 16)] == [1, 2, 4, 4, 8, 8, 8, 16]
    # 400 * (1 + (1 + log2 4) * 0.5 / 240) * 1.1 = 442.75 -> 442 (by hand)
    assert chronus.estimate_duration(400, 4) == 442
    # 5644 * (1 + 0.5 / 240) * 1.1 = 6221.3 -> 6221 (job 0 of Figure 8(a))
    assert chronus.estimate_duration(5644, 1) == 6221


def test_take_latest_reserves_the_latest_leases_with_room() -> None:
    free = np.array([4, 4, 2, 4], dtype=np.int64)
    chosen = take_latest(free, LeaseItem(demand=4, leases=2, horizon=4, owner=0))
    assert chosen is not None and chosen.tolist() == [1, 3]  # lease 2 has too little room
    assert free.tolist() == [4, 0, 2, 0]
    # not enough leases before the horizon: nothing is debited
    assert take_latest(free, LeaseItem(demand=4, leases=2, horizon=3, owner=1)) is None
    assert free.tolist() == [4, 0, 2, 0]
    assert take_latest(free, LeaseItem(demand=1, leases=1, horizon=0, owner=2)) is None


def test_packable_on_top_of_cached_plans() -> None:
    base = np.zeros(0, dtype=np.int64)
    # one 4-GPU two-lease item fits a 4-GPU cluster over 3 leases, a second one does not
    a = LeaseItem(demand=4, leases=2, horizon=3, owner=0)
    b = LeaseItem(demand=4, leases=2, horizon=3, owner=1)
    assert packable([a], base, full=4)
    assert not packable([a, b], base, full=4)
    assert packable([], base, full=4)
    # cached plans are subtracted through `base`; leases past it have the whole cluster
    big = LeaseItem(demand=4, leases=1, horizon=2, owner=3)
    assert not packable([big], np.array([3, 3], dtype=np.int64), full=8)
    assert packable([big], np.array([3], dtype=np.int64), full=8)


def test_greedy_selection_takes_larger_bins_first() -> None:
    small = LeaseItem(demand=2, leases=1, horizon=2, owner=0)
    big = LeaseItem(demand=4, leases=1, horizon=2, owner=1)
    plans = select_latest_first([small, big], np.array([4, 4], dtype=np.int64), full=4)
    # the big item, listed second, gets the latest lease; the small one the earlier
    assert [p.tolist() if p is not None else None for p in plans] == [[1, 0], [0, 1]]


def test_greedy_selection_rolls_back_a_failed_item() -> None:
    base = np.array([4, 4], dtype=np.int64)
    items = [
        LeaseItem(demand=4, leases=2, horizon=2, owner=0),
        LeaseItem(demand=4, leases=3, horizon=2, owner=1),  # cannot fit: rolled back
        LeaseItem(demand=2, leases=1, horizon=2, owner=2),
    ]
    plans = select_latest_first(items, base, full=4)
    assert plans[1] is None
    assert plans[0] is not None and plans[0].tolist() == [1, 1]
    # the 3-lease item goes first (least slack) and fails; without the rollback the 2-lease
    # item would not fit, with it the 2-lease item fills both leases and the 2-GPU one fails
    assert plans[2] is None


# ---- the lease MIP -------------------------------------------------------------------------


def test_mip_feasibility_forces_the_plan() -> None:
    # capacity 4 per lease, two 4-GPU one-lease items; the short one must take lease 0
    items = [LeaseItem(4, 1, 2, 0), LeaseItem(4, 1, 1, 1)]
    res = solve_lease_mip(items, np.array([4, 4], dtype=np.int64), True, 5.0)
    assert res.status == "optimal" and res.rows is not None
    assert [r.tolist() for r in res.rows] == [[0, 1], [1]]
    assert res.binaries == 3


@pytest.mark.parametrize(("maximize", "expected"), [(True, [1, 0]), (False, [0, 1])])
def test_mip_objective_runs_as_much_or_as_little_as_possible_now(
    maximize: bool, expected: list[int]
) -> None:
    # unique optimum: both items in lease 0 (maximise) or both in lease 1 (minimise)
    items = [LeaseItem(4, 1, 2, 0), LeaseItem(4, 1, 2, 1)]
    res = solve_lease_mip(items, np.array([8, 8], dtype=np.int64), maximize, 5.0)
    assert res.rows is not None
    assert [r.tolist() for r in res.rows] == [expected, expected]


def _full_model_optimum(items: list[LeaseItem], cap: np.ndarray, maximize: bool) -> float | None:
    """Upstream's MIP written out densely (X[i, t] for every t < max horizon, S[i])."""
    n, span = len(items), max(it.horizon for it in items)
    nx = n * max(span, 0)
    cost = np.zeros(nx + n)
    rows: list[np.ndarray] = []
    lo: list[float] = []
    hi: list[float] = []
    for i, it in enumerate(items):
        cost[nx + i] = -10
        if it.horizon > 0:
            cost[i * span] -= (1 if maximize else -1) * it.demand / cap.max()
        count = np.zeros(nx + n)
        count[i * span : i * span + max(it.horizon, 0)] = 1
        count[nx + i] = -it.leases
        late = np.zeros(nx + n)
        late[i * span + max(it.horizon, 0) : (i + 1) * span] = 1
        pick = np.zeros(nx + n)
        pick[nx + i] = 1
        rows += [count, late, pick]
        lo += [0, 0, 1]
        hi += [0, 0, 1]
    for t in range(span):
        load = np.zeros(nx + n)
        for i, it in enumerate(items):
            load[i * span + t] = it.demand
        rows.append(load)
        lo.append(-np.inf)
        hi.append(float(cap[t]))
    res = milp(
        cost,
        integrality=np.ones(nx + n),
        bounds=Bounds(0, 1),
        constraints=LinearConstraint(np.array(rows), lo, hi),
    )
    return None if res.x is None else float(res.fun)


def test_reduced_mip_matches_the_full_model_on_random_instances() -> None:
    # the solver drops capacity rows that cannot bind and aggregates the leases without one;
    # its answer must be feasible for the full model and reach the full model's optimum
    rng = random.Random(7)
    for _ in range(80):
        items = [
            LeaseItem(rng.choice([1, 2, 4, 8]), rng.randint(1, 5), rng.randint(0, 7), k)
            for k in range(rng.randint(1, 5))
        ]
        span = max(max(it.horizon for it in items), 1)
        cap = np.array([rng.choice([4, 8, 8, 16]) for _ in range(span)], dtype=np.int64)
        maximize = rng.random() < 0.5
        best = _full_model_optimum(items, cap, maximize)
        res = solve_lease_mip(items, cap, maximize, 5.0)
        if best is None:
            assert res.rows is None
            continue
        assert res.rows is not None
        value = 0.0
        for it, row in zip(items, res.rows, strict=True):
            assert len(row) == max(it.horizon, 0) and int(row.sum()) == it.leases
            value -= 10 + (
                (1 if maximize else -1) * it.demand / cap.max() * row[0] if len(row) else 0
            )
        for t in range(span):
            used = sum(
                it.demand * r[t] for it, r in zip(items, res.rows, strict=True) if t < len(r)
            )
            assert used <= cap[t]
        assert value == pytest.approx(best, abs=1e-6)


def test_closed_form_matches_highs_when_no_capacity_row_binds() -> None:
    # with no capacity row the items are independent and the optimum unique: the closed form
    # must hand back HiGHS' plans and status exactly, infeasible and zero-lease items included
    rng = random.Random(11)
    shortcut = 0
    for _ in range(300):
        items = []
        for k in range(rng.randint(1, 6)):
            horizon = rng.randint(-1, 7)
            leases = rng.randint(0, max(horizon, 0)) if rng.random() < 0.95 else horizon + 1
            items.append(LeaseItem(rng.choice([1, 2, 4, 8]), leases, horizon, k))
        span = max(max(it.horizon for it in items), 1)
        roomy = sum(it.demand for it in items) + rng.choice([0, 0, 4])
        cap = np.full(span, roomy if rng.random() < 0.9 else 4, dtype=np.int64)
        maximize = rng.random() < 0.5
        fast = solve_lease_mip(items, cap, maximize, 5.0)
        exact = solve_lease_mip(items, cap, maximize, 5.0, closed_form=False)
        assert fast.status == exact.status
        assert (fast.binaries, fast.solved_vars) == (exact.binaries, exact.solved_vars)
        if exact.rows is None:
            assert fast.rows is None
            continue
        assert fast.rows is not None
        assert [r.tolist() for r in fast.rows] == [r.tolist() for r in exact.rows]
        shortcut += fast.seconds == 0.0
    assert shortcut > 150


def test_mip_infeasible_model_reports_no_solution() -> None:
    items = [LeaseItem(4, 2, 2, 0), LeaseItem(4, 1, 2, 1)]
    res = solve_lease_mip(items, np.array([4, 4], dtype=np.int64), True, 5.0)
    assert res.status == "infeasible" and res.rows is None


# ---- admission and lease mechanics on a hand-made trace ---------------------------------------

# Two 4-GPU jobs (400 s, deadline 1000 s) on a 4-GPU cluster, check interval 240. Derived by
# hand and confirmed by running upstream Chronus on the same input: job 0 is accepted (deadline
# tightened to 960 = 4 leases), job 1 is rejected and runs opportunistically at once (0..403.0,
# resumed once at 240 -> overhead 2 * 0.5 * 3); job 0 gets lease [480, 720) and finishes at
# 641.5 because its pending lease is credited too (docs/policies/chronus.md#leases).
TINY_CLUSTER = ClusterSpec("n1g4", 1, 1, 4)


def test_tiny_trace_admission_and_leases(a100_profiles: ThroughputProfiles) -> None:
    trace = [_job(0, 4, 400, 1000), _job(1, 4, 400, 1000)]
    res = chronus.simulate_greedy(trace, TINY_CLUSTER, a100_profiles, SimOptions(slot=240))
    a, b = res.jobs
    assert (a.start_time, a.end_time, a.preempt) == (480, 641.5, 0)
    assert (b.start_time, b.end_time, b.preempt) == (0, 403.0, 1)
    assert (res.accepted, res.declined) == (2, 0)
    assert res.extra["guaranteed_at_arrival"] == 1
    assert [(r.time, r.gpus_in_use, r.running, r.pending) for r in res.rounds] == [
        (0, 4, 1, 1),
        (240, 4, 1, 1),
        (480, 4, 1, 0),
        (720, 0, 0, 0),
    ]
    speedup = a100_profiles.tput("resnet50", 256, 4) / a100_profiles.tput("resnet50", 256, 1)
    assert res.rounds[0].ce == speedup / 4


class _MeasuringExecutor:
    """A testbed stand-in: every job it is asked about took `seconds` to be stable."""

    measured = True

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.asked: list[tuple[float, list[int]]] = []
        self.maps: list[tuple[int | None, ...] | None] = []

    def apply(
        self, now: float, changes: Sequence[AllocationChange], restart: bool
    ) -> dict[int, float]:
        self.asked.append((now, [c.job for c in changes]))
        return {c.job: self.seconds for c in changes}

    def observe_round(self, sample: RoundSample) -> None:
        self.maps.append(sample.gpu_map)


def test_on_a_testbed_the_last_measured_restart_is_the_resume_cost(
    a100_profiles: ThroughputProfiles,
) -> None:
    # upstream's testbed mode (time_aware_with_lease.py L209, L503-506): resumes x (whole
    # seconds to stable / 60) x (1 + log2 g) instead of resumes x 0.5 x (1 + log2 g)
    trace = [_job(0, 4, 400, 1000), _job(1, 4, 400, 1000)]
    testbed = _MeasuringExecutor(12)
    options = SimOptions(slot=240, record_gpu_map=True)
    res = chronus.simulate_greedy(trace, TINY_CLUSTER, a100_profiles, options, testbed)
    a, b = res.jobs
    # b counts two resumes, a one, as in simulation; a 12 s restart costs 12 / 60 = 0.2 each
    assert (b.start_time, b.end_time) == (0, 400 + 2 * 0.2 * 3)
    assert (a.start_time, a.end_time) == (480, 640 + 1 * 0.2 * 3)
    # asked only when the running jobs changed; the map lays the running job's GPUs out
    assert testbed.asked == [(0, [1]), (480, [0])]
    assert testbed.maps == [(1, 1, 1, 1), (1, 1, 1, 1), (0, 0, 0, 0), (None,) * 4]
    # the simulated executor is never asked and the modelled cost stays
    sim = chronus.simulate_greedy(trace, TINY_CLUSTER, a100_profiles, SimOptions(slot=240))
    assert [j.end_time for j in sim.jobs] == [641.5, 403.0]


def test_milp_mode_on_the_tiny_trace(a100_profiles: ThroughputProfiles) -> None:
    trace = [_job(0, 4, 400, 1000), _job(1, 4, 400, 1000)]
    res = chronus.simulate_milp(trace, TINY_CLUSTER, a100_profiles, SimOptions(slot=240))
    assert res.extra["solver_mode"] == "milp"
    assert res.extra["mip_solves"] == res.extra["leases_planned"] > 0
    assert res.extra["mip_fallbacks"] == 0
    assert all(j.end_time is not None for j in res.jobs)


def test_failed_mip_falls_back_to_greedy_and_is_counted(
    a100_profiles: ThroughputProfiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_incumbent(*_args: object, **_kwargs: object) -> MipResult:
        return MipResult("time_limit_no_solution", None, 0, 0, 5.0)

    monkeypatch.setattr(chronus, "solve_lease_mip", no_incumbent)
    trace = [_job(0, 4, 400, 1000), _job(1, 4, 400, 1000), _job(2, 2, 900, 3000, submit=100)]
    options = SimOptions(slot=240)
    fallback = chronus.simulate_milp(trace, TINY_CLUSTER, a100_profiles, options)
    greedy = chronus.simulate_greedy(trace, TINY_CLUSTER, a100_profiles, options)
    assert fallback.extra["mip_fallbacks"] == fallback.extra["mip_solves"] > 0
    assert fallback.extra["mip_fallback_reasons"] == {
        "time_limit_no_solution": fallback.extra["mip_solves"]
    }
    assert [(j.start_time, j.end_time) for j in fallback.jobs] == [
        (j.start_time, j.end_time) for j in greedy.jobs
    ]


def test_best_effort_job_needs_its_generated_deadline(a100_profiles: ThroughputProfiles) -> None:
    job = TraceJob(0, "0", 0, 10, "resnet50", INT64_MAX, 256, 1, 100, True)
    with pytest.raises(ConfigError, match="best-effort"):
        chronus.simulate_greedy([job], TINY_CLUSTER, a100_profiles, SimOptions(slot=240))


# ---- golden runs ------------------------------------------------------------------------------

# Measured by running upstream Chronus (HEAD, python-mip 1.15 without Gurobi) on Figure 8(a):
# job_id -> (end_time, preempt) from its time-aware-with-lease.csv.
FIG8A_UPSTREAM = {
    "0": (3721336.0, 23),
    "1": (3717668.0, 0),
    "3": (3721472.5, 0),
    "25": (3729625.5, 14),
    "50": (3777365.5, 96),
    "75": (3804431.0, 69),
    "100": (3768542.0, 5),
    "125": (3833581.0, 100),
    "150": (3919829.5, 18),
    "175": (3938549.5, 18),
}


def test_figure8a_greedy_matches_upstream_without_gurobi(
    fig8a_trace: list[TraceJob], n16g4: ClusterSpec, t4_profiles: ThroughputProfiles
) -> None:
    res = get_policy("chronus-greedy")(fig8a_trace, n16g4, t4_profiles, SimOptions(slot=60))
    assert (res.accepted, res.accepted + res.declined) == (84, 195)
    assert res.extra["leases_planned"] == 4812  # "Job Dim" lines in upstream's log
    by_id = {j.job_id: j for j in res.jobs}
    for job_id, (end, preempt) in FIG8A_UPSTREAM.items():
        assert (by_id[job_id].end_time, by_id[job_id].preempt) == (end, preempt), job_id


def test_figure10_greedy_reproduces_the_committed_resource_log(
    a100_profiles: ThroughputProfiles, mirror: Path, tmp_path: Path
) -> None:
    path = tmp_path / "fig10.csv"
    params = GeneratorParams(num_jobs=100, lam=1500, seed=1, min_ddl=1.5, max_ddl=1.5)
    write_generated_trace(params, a100_profiles, path)
    trace = load_trace(path, a100_profiles)
    cluster = ClusterSpec("n16g8", 1, 16, 8)
    res = get_policy("chronus-greedy")(trace, cluster, a100_profiles, SimOptions(slot=240))
    with (mirror / FIG10_LOG).open() as fh:
        logged = list(csv.DictReader(fh))
    assert len(logged) == len(res.rounds) == 4027
    for row, sample in zip(logged, res.rounds, strict=True):
        assert (
            row["time"],
            row["free_resource"],
            row["pending_num"],
            row["running_num"],
            row["ce"],
        ) == (
            str(sample.time),
            str(cluster.num_gpus - sample.gpus_in_use),
            str(sample.pending),
            str(sample.running),
            repr(sample.ce),
        )
    assert (res.accepted, res.declined) == (100, 0)
