"""Pollux baseline (spec 5): goodput model, model fit, search operators, a cut-down Figure 8(a) run.

Expected values of the hand cases are derived by hand from the artifact's formulas (quoted in the
comments); values marked "artifact" were measured by running the artifact's own Pollux code
(numpy 1.19, pandas 1.1, scipy 1.5, autograd, Python 3.8) on the same input; the workload rows
were checked against the artifact's deleted `elasticVpollux_p.csv` (commit ceb7315). The full
Figure 8(a) run is a benchmark (benchmarks/bench_pollux.py), not a test.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from infra.workflow import TINY_TABLE, copy_workflow, run_snakemake, tiny_config

from reprise.analysis.tables import read_table
from reprise.data.clusters import ClusterSpec
from reprise.data.profiles import ThroughputProfiles
from reprise.data.traces import TraceJob
from reprise.errors import ConfigError
from reprise.policies import get_policy
from reprise.policies.pollux.apps import canonical_placement, load_applications
from reprise.policies.pollux.blas import single_threaded_blas
from reprise.policies.pollux.goodput import (
    EPS,
    PerfParams,
    _objective,
    best_goodput_one,
    efficiency,
    fit_perf_params,
)
from reprise.policies.pollux.policy import (
    FIXED_BATCH,
    PolluxJob,
    WorkloadRow,
    _Counters,
    _Model,
    pollux_workload,
)
from reprise.policies.pollux.policy import simulate as simulate_pollux
from reprise.policies.pollux.search import (
    AllocationProblem,
    Population,
    SearchStats,
    SpeedupTable,
    _offspring,
    carry_over,
    crowding_distance,
    front_crowding,
    nondominated_fronts,
    pareto_ranks,
    run_nsga2,
    solution_keys,
    survivors,
)
from reprise.records.outcome import RunOutcome
from reprise.sim.options import SimOptions

# ------------------------------------------------------------------------------------------------
# statistical efficiency and goodput


def test_efficiency_matches_the_gradient_noise_formula() -> None:
    # scale = 512 / 128 = 4; gain = (var + sqr) / (var / scale + sqr) = 4 / 1.75; eff = gain / 4
    assert float(efficiency(1.0, 3.0, 128, 512)) == pytest.approx(4 / 1.75 / 4)
    # at the initial batch the efficiency is exactly 1
    assert float(efficiency(0.7, 2.0, 128, 128)) == pytest.approx(1.0)
    # noise-free gradients (var = 0): doubling the batch halves the efficiency
    assert float(efficiency(1.0, 0.0, 100, 200)) == pytest.approx(0.5)
    # a non-positive denominator counts as gain 1 (artifact's guard)
    assert float(efficiency(0.0, 0.0, 100, 400)) == pytest.approx(0.25)


def _goodput_by_hand(
    p: PerfParams,
    grad: tuple[float, float],
    init: int,
    nodes: int,
    reps: int,
    atomic: int,
    acc: int,
) -> float:
    comp = p.alpha_c + p.beta_c * atomic
    if nodes > 1:
        net = p.alpha_n + p.beta_n * max(reps - 2, EPS)
    elif reps > 1:
        net = p.alpha_r + p.beta_r * max(reps - 2, EPS)
    else:
        net = EPS + EPS * max(reps - 2, EPS)
    step = (comp**p.gamma + net**p.gamma) ** (1 / p.gamma)
    batch = reps * atomic * (acc + 1)
    tput = batch / (acc * comp + step)
    scale = batch / init
    gain = (grad[1] + grad[0]) / (grad[1] / scale + grad[0])
    return tput * gain / scale


def test_best_goodput_picks_the_best_valid_candidate() -> None:
    perf = PerfParams(0.02, 0.001, 0.05, 0.002, 0.01, 0.001, 1.5)
    grad = (1.0, 50.0)
    init, max_batch, lo, hi = 128, 4096, 32, 256
    for nodes, reps in [(1, 1), (1, 4), (2, 8), (4, 16)]:
        good, atomic, acc = best_goodput_one(perf, grad, init, max_batch, (lo, hi), nodes, reps)
        assert lo <= atomic <= hi
        assert good == pytest.approx(_goodput_by_hand(perf, grad, init, nodes, reps, atomic, acc))
        # brute force over the same 50 geometric candidates, rules as in the artifact
        best = 0.0
        for batch in np.geomspace(max(init, lo * reps), max_batch, 50):
            local = batch / reps
            a = math.ceil(local / hi - 1e-8) - 1
            if reps == 1 and local > init + 1e-8:
                a = max(a, 1)  # one replica above the initial batch accumulates at least once
            at = math.ceil(local / (a + 1) - 1e-8)
            if lo <= at <= hi:
                best = max(best, _goodput_by_hand(perf, grad, init, nodes, reps, at, a))
        assert good == pytest.approx(best)


def test_goodput_choice_matches_the_artifact() -> None:
    # artifact: GoodputFunction(params, (0.5, 3.0), 128).optimize(n, r, 4096, (32, 1024), True)
    perf = PerfParams(
        0.04776048370867519, 0.000636887485040695, 0.039810606163874614, 1e-08,
        0.032137097358285016, 0.00019420335770526872, 1.1093850530686675,
    )  # fmt: skip
    expected = {
        (1, 1): (990.0830550962356, 128, 0),
        (1, 4): (2339.1549506264405, 152, 0),
        (2, 8): (3205.6750374941835, 112, 0),
        (4, 16): (4285.126444872098, 79, 0),
        (1, 22): (4936.658914714637, 66, 0),
        (3, 12): (3825.9702762540473, 93, 0),
    }
    for (nodes, reps), (good, atomic, acc) in expected.items():
        got = best_goodput_one(perf, (0.5, 3.0), 128, 4096, (32, 1024), nodes, reps)
        assert got[0] == pytest.approx(good, rel=1e-12)
        assert got[1:] == (atomic, acc)


def test_single_replica_above_the_initial_batch_accumulates() -> None:
    # noise-dominated gradients make large batches pay off: the choice exceeds the initial batch
    perf = PerfParams(0.02, 0.001, 0.05, 0.002, 0.01, 0.001, 1.5)
    _, atomic, acc = best_goodput_one(perf, (0.01, 100.0), 128, 4096, (32, 256), 1, 1)
    assert atomic * (acc + 1) > 128
    assert acc >= 1


# ------------------------------------------------------------------------------------------------
# throughput-model fit


def _observe(p: PerfParams, configs: list[tuple[int, int, int]]) -> tuple[np.ndarray, ...]:
    nodes = np.array([c[0] for c in configs])
    reps = np.array([c[1] for c in configs])
    atomic = np.array([c[2] for c in configs])
    comp = p.alpha_c + p.beta_c * atomic
    net = np.where(
        nodes > 1,
        p.alpha_n + p.beta_n * np.maximum(reps - 2, EPS),
        np.where(reps > 1, p.alpha_r + p.beta_r * np.maximum(reps - 2, EPS), 2 * EPS),
    )
    step = (comp**p.gamma + net**p.gamma) ** (1 / p.gamma)
    return nodes, reps, atomic, comp, step


def test_objective_gradient_matches_finite_differences() -> None:
    true = PerfParams(0.03, 0.002, 0.08, 0.004, 0.02, 0.001, 2.0)
    nodes, reps, atomic, comp, step = _observe(true, [(1, 1, 64), (1, 4, 32), (2, 8, 128)])
    link = np.where(nodes > 1, 0, np.where(reps > 1, 1, 2))
    args = (atomic.astype(float), np.log(comp * 1.1), np.log(step * 0.9), link,
            np.maximum(reps - 2, EPS).astype(float))  # fmt: skip
    x = np.array([0.05, 0.01, 0.1, 0.02, 0.07, 0.01, 2.5])
    _, grad = _objective(x, *args)
    for i in range(7):
        h = np.zeros(7)
        h[i] = 1e-7 * max(1.0, abs(x[i]))
        numeric = (_objective(x + h, *args)[0] - _objective(x - h, *args)[0]) / (2 * h[i])
        assert grad[i] == pytest.approx(numeric, rel=1e-4, abs=1e-6)


def test_fit_reproduces_observed_step_times() -> None:
    true = PerfParams(0.03, 0.002, 0.08, 0.004, 0.02, 0.001, 2.0)
    configs = [(1, 1, 64), (1, 2, 64), (1, 4, 32), (2, 8, 128), (4, 16, 64), (3, 6, 100)]
    nodes, reps, atomic, comp, step = _observe(true, configs)
    with single_threaded_blas():
        fit = fit_perf_params(nodes, reps, atomic, comp, step)
    _, _, _, comp_fit, step_fit = _observe(fit, configs)
    assert np.allclose(comp_fit, comp, rtol=0.02)
    assert np.allclose(step_fit, step, rtol=0.05)
    assert 1.0 <= fit.gamma <= 10.0


def test_fit_pins_what_the_observations_cannot_identify() -> None:
    # one configuration on one GPU: alpha_c = mean compute / 2, betas and network terms pinned at
    # the lower bound, then the prior lifts the inter-node pair to 1.1 x the intra-node pair
    fit = fit_perf_params(
        np.array([1]), np.array([1]), np.array([64]), np.array([0.2]), np.array([0.21])
    )
    assert fit.alpha_c == pytest.approx(0.1)
    assert fit.alpha_r == pytest.approx(EPS) and fit.beta_r == pytest.approx(EPS)
    assert fit.alpha_n == pytest.approx(1.1 * EPS) and fit.beta_n == pytest.approx(1.1 * EPS)
    # compute time 0.2 and step time 0.21 with a negligible network: the fit lands in between
    assert 0.2 <= fit.alpha_c + fit.beta_c * 64 <= 0.21


# ------------------------------------------------------------------------------------------------
# search operators


def _problem(
    base: np.ndarray, max_replicas: list[int], capacity: int = 4, factor: float = 1.0
) -> AllocationProblem:
    nodes, jobs = base.shape

    def source(j: np.ndarray, n: np.ndarray, r: np.ndarray) -> np.ndarray:
        return r.astype(float)

    table = SpeedupTable(np.full((jobs, nodes + 1, 65), np.nan), source)
    table.values[:, 0, 0] = 0.0
    return AllocationProblem(
        base.astype(np.int8),
        np.array(max_replicas, dtype=np.int64),
        np.full(nodes, capacity, dtype=np.int64),
        table,
        np.full(jobs, factor),
    )


def _states(*solutions: list[list[int]]) -> np.ndarray:
    """Solutions given as [job][node] lists -> (nodes, jobs, solutions) int8."""
    return np.stack([np.array(s, dtype=np.int8).T for s in solutions], axis=2)


def test_repair_allows_one_multi_node_job_per_node_and_drops_later_jobs() -> None:
    # jobs in priority order; jobs 0 and 1 span two nodes and share node 1; job 2 is single-node
    # on node 1. Rule: from the second multi-node job on a node, that job and every later job
    # lose that node (quirk: job 2 too, although it is not multi-node).
    prob = _problem(np.zeros((3, 3)), [64, 64, 64])
    states = _states([[1, 1, 0], [0, 1, 1], [0, 1, 0]])
    out = prob.repair(states, np.random.default_rng(0))
    assert out[:, :, 0].T.tolist() == [[1, 1, 0], [0, 0, 1], [0, 0, 0]]


def test_repair_caps_replicas_and_node_capacity() -> None:
    prob = _problem(np.zeros((3, 3)), [3, 64, 64])
    rng = np.random.default_rng(5)
    for _ in range(20):
        # job 0: 2 + 2 replicas on one node each would exceed its cap of 3 (random node order);
        # node 2: jobs 1 and 2 ask for 3 + 3 > 4 GPUs, job 1 (higher priority) keeps its 3
        states = _states([[2, 0, 0], [0, 0, 3], [0, 0, 3]])
        states[1, 0, 0] = 2  # job 0 on node 1 as well: a multi-node job on nodes 0 and 1
        out = prob.repair(states, rng)[:, :, 0].T
        assert out[0].sum() == 3 and set(out[0][:2].tolist()) <= {1, 2}
        assert out[1].tolist() == [0, 0, 3]
        assert out[2].tolist() == [0, 0, 1]
        assert (out.sum(axis=0) <= 4).all()


def test_mutation_and_repair_keep_solutions_feasible() -> None:
    rng = np.random.default_rng(1)
    base = np.zeros((4, 5), dtype=np.int8)
    base[0, 0] = base[1, 1] = 4
    base[2, 2] = 2
    prob = _problem(base, [2, 8, 4, 1, 64])
    states = np.repeat(base[:, :, None], 30, axis=2)
    for _ in range(50):
        states = prob.repair(prob.mutate(states, rng), rng)
        assert (states.sum(axis=1) <= 4).all()
        assert (states.sum(axis=0) <= np.array([2, 8, 4, 1, 64])[:, None]).all()
        assert (states >= 0).all()
        multi = (states > 0).sum(axis=0) > 1
        assert (((states > 0) & multi[None]).sum(axis=1) <= 1).all()


def test_crossover_swaps_job_prefixes() -> None:
    prob = _problem(np.zeros((2, 3)), [64, 64, 64])
    pop = _states([[1, 0], [1, 0], [1, 0]], [[0, 2], [0, 2], [0, 2]])
    kids = prob.crossover(pop, np.array([[0, 1]] * 40), np.random.default_rng(3))
    for k in range(kids.shape[2] // 2):
        first, second = kids[:, :, k].T, kids[:, :, k + 40].T
        cut = next((j for j in range(3) if first[j].tolist() == [1, 0]), 3)
        # first child: the second parent's rows before the cut, the first parent's after
        assert all(first[j].tolist() == ([0, 2] if j < cut else [1, 0]) for j in range(3))
        assert all(second[j].tolist() == ([1, 0] if j < cut else [0, 2]) for j in range(3))


def test_offspring_are_new_unique_and_feasible() -> None:
    # pymoo's mating with duplicate elimination: no offspring repeats another or a parent
    rng = np.random.default_rng(2)
    base = np.zeros((4, 3), dtype=np.int8)
    base[0, 0] = base[1, 1] = 2
    prob = _problem(base, [4, 2, 8])
    states = prob.repair(np.repeat(base[:, :, None], 12, axis=2), rng)
    states = prob.repair(prob.mutate(states, rng), rng)
    keys = solution_keys(states)
    first = sorted({k: i for i, k in reversed(list(enumerate(keys)))}.values())
    states = states[:, :, first]
    values = prob.evaluate(states)
    idx, rank, crowd = survivors(values, len(first), rng)
    pop = Population(states[:, :, idx], values[idx], [keys[first[i]] for i in idx], rank, crowd)
    kids, kid_keys, share = _offspring(prob, pop, 40, rng, SearchStats(), 1.0)
    assert kids.shape[2] == len(kid_keys) == len(set(kid_keys)) > 0
    assert not set(kid_keys) & set(pop.keys) and 0.0 < share <= 1.0
    assert solution_keys(kids) == kid_keys
    assert np.array_equal(prob.repair(kids.copy(), rng), kids)  # repaired already


def test_evaluate_power_mean_and_utility_by_hand() -> None:
    # 2 nodes x 4 GPUs, 2 jobs, speed-up = replicas; solution: job 0 has 2 replicas on node 0,
    # job 1 has 1 on node 1 (a change from the base, factor 0.5). Scaled speed-up = s * 2 / 8.
    base = np.array([[2, 0], [0, 0]], dtype=np.int8)
    prob = _problem(base, [64, 64], factor=0.5)
    values = prob.evaluate(_states([[2, 0], [0, 1]]))
    s0, s1 = 2 * 2 / 8, 1 * 2 / 8 * 0.5
    mean = 2 / (1 / (s0 + 1e-3) + 1 / (s1 + 1e-3))
    assert values[0, 0] == pytest.approx(-mean)
    assert values[0, 1] == pytest.approx(-(2 + 1) / 8)  # speed-ups over GPUs of active nodes


def test_fast_ranking_and_crowding_agree_with_the_reference() -> None:
    rng = np.random.default_rng(7)
    for trial in range(300):
        n = int(rng.integers(1, 90))
        values = rng.integers(0, 6, size=(n, 2)).astype(float)
        if trial % 2:
            values = rng.random((n, 2))
        ranks = pareto_ranks(values)
        crowd = front_crowding(values, ranks)
        for k, front in enumerate(nondominated_fronts(values, n)):
            assert (ranks[front] == k).all()
            with np.errstate(invalid="ignore"):
                assert np.allclose(crowd[front], crowding_distance(values[front]))


def test_carry_over_copies_rows_in_previous_order_quirk() -> None:
    prev = _states([[1, 0], [0, 2], [3, 0]])  # jobs a, b, c
    base = np.zeros((2, 3), dtype=np.int8)
    # b and a swapped priority, c finished, d is new: a's old row lands in b's slot and back
    init = carry_over(prev, ["a", "b", "c"], ["b", "a", "d"], base)
    assert init[:, :, 0].T.tolist() == [[1, 0], [0, 2], [0, 0]]
    assert carry_over(None, [], ["x"], base[:, :1])[:, :, 0].T.tolist() == [[0, 0]]


def test_search_is_reproducible_and_keeps_the_base_when_it_is_best() -> None:
    base = np.zeros((2, 2), dtype=np.int8)
    base[:, 0] = [4, 0]
    base[:, 1] = [0, 4]
    results = []
    for _ in range(2):
        prob = _problem(base, [4, 4], factor=0.0)  # any change zeroes a job's speed-up
        results.append(run_nsga2(prob, base[:, :, None], np.random.default_rng(11), n_gen=20))
    assert np.array_equal(results[0].front, results[1].front)
    best = results[0].front[:, :, results[0].best]
    assert np.array_equal(best, base)


# ------------------------------------------------------------------------------------------------
# workload, ground truth, end-to-end


def test_workload_rekeys_the_elasticflow_trace(fig8a_trace: list[TraceJob]) -> None:
    rows = pollux_workload(fig8a_trace)
    assert len(rows) == 195
    # first rows of the artifact's elasticVpollux_p.csv (commit ceb7315)
    expected = [
        ("cifar10-0", 3715485, "cifar10", 1, 4096, 3719996),
        ("ncf-1", 3717550, "ncf", 8, 32768, 3717583),
        ("yolov3-2", 3721209, "yolov3", 1, 64, 3758928),
        ("ncf-3", 3721260, "ncf", 1, 32768, 3721296),
    ]
    got = [(r.name, r.time, r.application, r.num_replicas, r.batch_size, r.ddl) for r in rows]
    assert got[:4] == expected


def test_ground_truth_lookups(mirror: Path) -> None:
    apps = load_applications(mirror, {"cifar10"})
    app = apps["cifar10"]
    assert (app.init_batch_size, app.max_batch_size) == (128, 4096)
    assert (app.min_local_bsz, app.max_local_bsz, app.max_epochs) == (32, 1024, 100)
    assert canonical_placement((0, 2, 1, 0, 3)) == (1, 3, 2)
    # a measured point of placements.csv: placement 1, local batch 32
    assert app.step_sync((1,), 32) == pytest.approx((0.0427886962890625, 0.0004995360016822816))
    assert app.progress_at(0) == 0.0
    # epoch 0 statistics halfway between the measured batches 128 and 256 (validation files)
    sqr, var = app.grad_stats(192, 0)
    assert sqr == pytest.approx((8.947307535897329 + 17.379458169870425) / 2)
    assert var == pytest.approx((5.066593295150894 + 13.937760473946334) / 2)


def test_step_times_match_the_artifact(mirror: Path) -> None:
    # artifact: Application.get_throughput, measured placements (1-D) and scattered (N-D) ones
    apps = load_applications(mirror, {"cifar10", "imagenet", "bert", "ncf", "yolov3"})
    cases = [
        ("cifar10", (2, 2), 300, (0.24939929089456234, 0.02341766851803042)),
        ("cifar10", (4, 4, 4, 4, 1), 100, (0.16634113223929156, 0.08176767116345857)),
        ("imagenet", (1,) * 7, 40, (0.4109784245491027, 0.16783440551757817)),
        ("bert", (3,), 7, (0.6766718178987503, 0.0792939600944519)),
        ("ncf", (1,), 16384, (0.014968737878396702, 0.00033913164137045604)),
        ("yolov3", (4,) * 6, 6, (1.3483259528875349, 0.8101694297790526)),
    ]
    for app, placement, local, expected in cases:
        assert apps[app].step_sync(placement, local) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(
    ("app", "steps", "final"),
    [
        # artifact: Job driven through the same placement schedule; (epoch, progress, atomic
        # batch, accumulation steps, attained GPU-seconds, completion time) after the last step
        ("deepspeech2", 109, (80, 28536.0, 80, 0, 27612, 6534)),
        ("bert", 81, (2, 14774.0, 12, 3, 20512, 4814)),
        ("ncf", 2, (10, 194174.0, 16384, 1, 77, 77)),
    ],
)
def test_job_progress_matches_the_artifact(
    mirror: Path, app: str, steps: int, final: tuple[float, ...]
) -> None:
    apps = load_applications(mirror, {app})
    trace = TraceJob(0, "0", 0, 1, app, 10**9, 1, 1, 1, False)
    job = PolluxJob(trace, WorkloadRow(f"{app}-0", 0, app, 1, 1, 10**9), apps[app],
                    FIXED_BATCH.get(app))  # fmt: skip
    model = _Model(_Counters())
    schedule = [(1,), (1,), (2, 2), (2, 2), (4,), (1, 1, 1), (4, 4), (4, 4), (4, 4), (2,)] * 40
    now = done = 0
    with single_threaded_blas():
        for i, placement in enumerate(schedule):
            if job.completion is not None:
                break
            if i % 3 == 0:  # re-allocate every third interval (30 s rescale pause each time)
                row = np.zeros(16, dtype=np.int8)
                row[: len(placement)] = placement
                model.reallocate(job, row, now)
            model.advance(job, now, 60)
            now += 60
            done += 1
    got = (job.epoch, job.progress, job.atomic_bsz, job.accum_steps, job.attained, job.completion)
    assert done == steps
    assert got == pytest.approx(final)


def test_missing_data_root_is_a_config_error(
    fig8a_trace: list[TraceJob], n16g4: ClusterSpec, t4_profiles: ThroughputProfiles
) -> None:
    with pytest.raises(ConfigError, match="data_root"):
        get_policy("pollux")(fig8a_trace[:2], n16g4, t4_profiles, SimOptions())


CUT_DOWN_MODELS = {"ncf", "cifar10"}
"""Short jobs among the first 8 of Figure 8(a): 5 jobs, done by ~3.72e6 s (~20 searches, ~10 s)."""


@pytest.fixture()
def cut_down(fig8a_trace: list[TraceJob]) -> list[TraceJob]:
    return [j for j in fig8a_trace[:8] if j.model in CUT_DOWN_MODELS]


def test_cut_down_figure8a_is_deterministic(
    mirror: Path, cut_down: list[TraceJob], n16g4: ClusterSpec, t4_profiles: ThroughputProfiles
) -> None:
    trace = cut_down
    assert [j.idx for j in trace] == [0, 1, 3, 4, 7]
    options = SimOptions(slot=60, gpu_type="T4", data_root=str(mirror), seed=3)
    first = get_policy("pollux")(trace, n16g4, t4_profiles, options)
    second = get_policy("pollux")(trace, n16g4, t4_profiles, options)
    assert [j.end_time for j in first.jobs] == [j.end_time for j in second.jobs]
    assert [j.start_time for j in first.jobs] == [j.start_time for j in second.jobs]
    assert [r.ce for r in first.rounds] == [r.ce for r in second.rounds]
    assert first.extra == second.extra
    assert first.accepted + first.declined == len(trace)
    assert [j.idx for j in first.jobs] == [j.idx for j in trace]
    for job in first.jobs:
        assert job.end_time is not None and job.start_time is not None
        assert job.submit_time <= job.start_time < job.end_time
        assert job.met_deadline_published == (job.end_time <= (job.deadline or 0))
    assert all(0 <= r.gpus_in_use <= 64 and 0.0 <= r.ce <= 1.0 for r in first.rounds)
    # ncf runs one replica at its fixed batch: about a minute of training after its first round
    for job in first.jobs:
        if job.model == "ncf":
            assert job.end_time - job.submit_time < 200  # type: ignore[operator]
    assert first.extra["seed"] == 3
    assert 0 < first.extra["searches"] <= len(first.rounds)


def test_workflow_runs_one_job_per_seed_reproducibly(tmp_path: Path, mirror: Path) -> None:
    """`snakemake` on a two-job cut of Figure 8(a): one run per seed, mean and spread in the
    table, and a forced rerun of one seed rewrites its run record byte for byte."""
    root = copy_workflow(tmp_path / "wf")
    config = tiny_config(
        tmp_path, mirror, ["edf", "pollux"], jobs=2, seeds={"pollux": [0, 1]}, cluster="n16g4"
    )
    env = {"REPRISE_MIRRORS": str(mirror)}
    args = (TINY_TABLE, "-c2", "--configfile", str(config))
    result = run_snakemake(root, *args, env=env, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    runs = root / "results/runs/sim/tiny/tiny/n16g4"
    assert sorted(p.name for p in runs.iterdir()) == ["edf", "pollux.s0", "pollux.s1"]
    summary = json.loads((runs / "pollux.s1/summary.json").read_text())
    assert summary["policy"] == "pollux" and summary["options"]["seed"] == 1
    assert summary["metrics"]["extra"]["seed"] == 1
    assert len(summary["inputs"]["policy_data"]) == 52
    assert "seed" not in json.loads((runs / "edf/summary.json").read_text())["options"]
    rows = {r["policy"]: r for r in read_table(root / TINY_TABLE)}
    assert rows["pollux"]["seeds"] == "0;1" and rows["pollux"]["total"] == "4"
    assert rows["pollux"]["status"] == "ok" and rows["edf"]["seeds"] == ""
    before = {p.name: p.read_bytes() for p in (runs / "pollux.s0").iterdir()}
    rerun = (*args, "--forcerun", str(runs.relative_to(root) / "pollux.s0/summary.json"))
    result = run_snakemake(root, *rerun, env=env, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "pollux.s0" in result.stdout + result.stderr
    assert {p.name: p.read_bytes() for p in (runs / "pollux.s0").iterdir()} == before


def test_horizon_cuts_a_run_short_and_counts_unfinished_jobs_as_missed(
    mirror: Path, cut_down: list[TraceJob], n16g4: ClusterSpec, t4_profiles: ThroughputProfiles
) -> None:
    options = SimOptions(slot=60, gpu_type="T4", data_root=str(mirror), seed=3)
    result = simulate_pollux(cut_down, n16g4, t4_profiles, options, horizon=180)
    unfinished = [j for j in result.jobs if j.end_time is None]
    assert unfinished and len(result.rounds) == 3  # rounds at 60, 120, 180 s after the start
    assert all(j.met_deadline_published is False for j in unfinished)
    assert result.accepted + result.declined == len(cut_down)


def test_switch_runs_the_pymoo_order_search(
    mirror: Path,
    cut_down: list[TraceJob],
    n16g4: ClusterSpec,
    t4_profiles: ThroughputProfiles,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`pollux_pymoo_draws` picks the draw-for-draw compiled search, the default the fused one."""
    import reprise.policies.pollux.policy as policy

    called: list[str] = []
    for name in ("run_fused", "run_in_pymoo_order"):
        plain = getattr(policy, name)

        def recording(*args: object, _plain: object = plain, _name: str = name) -> object:
            called.append(_name)
            return _plain(*args)  # type: ignore[operator]

        monkeypatch.setattr(policy, name, recording)
    runs: dict[bool, RunOutcome] = {}
    for pymoo in (False, True):
        called.clear()
        options = SimOptions(
            slot=60, gpu_type="T4", data_root=str(mirror), seed=3, pollux_pymoo_draws=pymoo
        )
        runs[pymoo] = simulate_pollux(cut_down, n16g4, t4_profiles, options, horizon=3600)
        assert set(called) == {"run_in_pymoo_order" if pymoo else "run_fused"}
        assert len(called) == runs[pymoo].extra["searches"] > 0
