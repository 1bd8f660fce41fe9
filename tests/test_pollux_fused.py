"""Pollux's fused search: the artifact's NSGA-II drawn one candidate at a time.

Its draws are not the reference's (`search.py`, pymoo's order), so a search does not end where
the reference's does. What must hold instead: every solution it returns is feasible, unique and
valued as the reference values it; its front is the non-dominated set of its population; its
operators have the reference operators' distributions (compared on many draws); a seed gives the
same search every time. A whole Figure 8(a) seed is compared with the published ratio in
docs/policies/pollux.md#the-fused-search (benchmarks, not tests).
"""

from __future__ import annotations

import numpy as np
import pytest
from infra.pollux_problems import random_initial, random_problem, speedup_source
from scipy import stats

from reprise.policies.pollux import fused
from reprise.policies.pollux.search import (
    MAX_NODES_PER_JOB,
    AllocationProblem,
    SpeedupTable,
    rank_and_crowd,
    run_nsga2,
)


def _feasible(problem: AllocationProblem, states: np.ndarray) -> None:
    """The repair's three rules hold for every solution of `states` (nodes, jobs, solutions)."""
    used = states > 0
    multi = used.sum(axis=0) > 1  # (jobs, solutions)
    assert ((used & multi[None]).sum(axis=1) <= 1).all(), "two multi-node jobs on a node"
    assert (states.sum(axis=0) <= problem.max_replicas[:, None]).all()
    assert (used.sum(axis=0) <= MAX_NODES_PER_JOB).all()
    assert (states.sum(axis=1) <= problem.capacity[:, None]).all()
    assert (states >= 0).all()


SHAPES = [
    (0, 4, 3, 4),
    (1, 16, 9, 4),
    (2, 16, 24, 4),
    (3, 8, 40, 8),
    (4, 20, 12, 2),  # more than 16 nodes: the per-job node limit applies
    (5, 2, 1, 4),  # one job: crossover cuts nowhere
    (6, 9, 5, 3),  # nodes not a multiple of 8: padded rows
]


@pytest.mark.parametrize(("seed", "nodes", "jobs", "capacity"), SHAPES)
def test_front_is_feasible_unique_non_dominated_and_valued_as_the_reference(
    seed: int, nodes: int, jobs: int, capacity: int
) -> None:
    problem = random_problem(seed, nodes, jobs, capacity)
    result = fused.run_fused(problem, random_initial(problem, seed, 7), np.random.default_rng(seed))
    front = result.front
    assert front.shape[:2] == (nodes, jobs) and front.shape[2] >= 1
    _feasible(problem, front)
    keys = {front[:, :, k].tobytes() for k in range(front.shape[2])}
    assert len(keys) == front.shape[2], "a solution twice on the front"
    np.testing.assert_allclose(result.front_values, problem.evaluate(front), rtol=1e-12)
    ranks, _ = rank_and_crowd(result.front_values)
    assert (ranks == 0).all()
    assert result.best == int(np.argmin(result.front_values[:, 0]))
    if jobs > 1:
        assert result.stats.generations == 99
        assert result.stats.evaluations >= 99 * 100 * 0.9
    else:  # 24 feasible solutions: the search runs out of new ones and stops, as pymoo does
        assert result.stats.evaluations == 24 and result.stats.generations < 99
    # every speed-up the search looked at was computed, nothing else
    looked = problem.speedups.values
    assert problem.speedups.computed == int((~np.isnan(looked)).sum()) - jobs


def test_a_seed_gives_the_same_search_and_generator_state() -> None:
    runs = []
    for _ in range(2):
        problem = random_problem(2, 16, 24, 4)
        rng = np.random.default_rng(11)
        result = fused.run_fused(problem, random_initial(problem, 2, 7), rng)
        runs.append((result, rng.bit_generator.state, problem.speedups.computed))
    (a, state_a, computed_a), (b, state_b, computed_b) = runs
    assert np.array_equal(a.front, b.front) and a.best == b.best and a.stats == b.stats
    assert np.array_equal(a.front_values, b.front_values)
    assert state_a == state_b and computed_a == computed_b
    other = fused.run_fused(
        random_problem(2, 16, 24, 4),
        random_initial(random_problem(2, 16, 24, 4), 2, 7),
        np.random.default_rng(12),
    )
    assert other.stats != a.stats or not np.array_equal(other.front, a.front)


def test_search_finds_what_the_reference_finds() -> None:
    """On a small problem both searches reach the same best first objective (the optimum of a
    space they both cover), seed after seed."""
    for seed in range(3):
        problem = random_problem(seed, 4, 3, 4)
        initial = random_initial(problem, seed, 5)
        ours = fused.run_fused(problem, initial, np.random.default_rng(seed))
        ref_problem = random_problem(seed, 4, 3, 4)
        ref = run_nsga2(ref_problem, initial, np.random.default_rng(seed))
        assert ours.front_values[:, 0].min() == pytest.approx(ref.front_values[:, 0].min())


def test_a_space_without_new_offspring_ends_the_search_early() -> None:
    """One job on one node of one GPU: two solutions in all, so the search stops as pymoo does
    once no unique offspring can be made."""
    table = SpeedupTable(np.full((1, 2, 2), np.nan), speedup_source)
    problem = AllocationProblem(
        np.zeros((1, 1), dtype=np.int8),
        np.array([1]),
        np.array([1]),
        table,
        np.array([0.5]),
    )
    result = fused.run_fused(problem, np.zeros((1, 1, 1), dtype=np.int8), np.random.default_rng(0))
    assert result.stats.generations < 99
    assert result.stats.evaluations == 2
    assert sorted(int(v) for v in result.front.reshape(-1)) in ([0], [1], [0, 1])


def test_a_speed_up_table_too_small_is_an_error() -> None:
    problem = random_problem(0, 4, 3, 4)
    problem.speedups.values = problem.speedups.values[:, :, :3].copy()
    with pytest.raises(ValueError, match="too small"):
        fused.run_fused(problem, random_initial(problem, 0, 3), np.random.default_rng(0))


def test_rank_and_crowding_equal_the_reference() -> None:
    rng = np.random.default_rng(0)
    for trial in range(400):
        n = int(rng.integers(1, 80))
        ties = rng.integers(0, 5, size=(n, 2)).astype(float)  # many ties and repeated points
        values = rng.random((n, 2)) if trial % 2 else ties
        ranks, crowd, fronts = fused.rank_and_crowd(values)
        want_ranks, want_crowd = rank_and_crowd(values)
        assert np.array_equal(ranks, want_ranks)
        np.testing.assert_allclose(crowd, want_crowd, rtol=1e-12, atol=1e-12)
        assert fronts == want_ranks.max() + 1


@pytest.mark.parametrize("jobs", [1, 2, 7, 44])
def test_binomial_rows_are_binomial_cdfs(jobs: int) -> None:
    cdfs = fused.trial_cdfs(jobs)
    for absent in range(jobs + 1):
        want = stats.binom.cdf(np.arange(absent + 1), absent, 1.0 / jobs)
        np.testing.assert_allclose(cdfs[absent, : absent + 1], want, atol=1e-12)
    want = stats.binom.cdf(np.arange(jobs + 1), jobs, 0.1)
    np.testing.assert_allclose(cdfs[jobs + 1], want, atol=1e-12)
    np.testing.assert_allclose(cdfs[jobs + 2], want, atol=1e-12)


def _rows(states: np.ndarray) -> tuple[np.ndarray, int]:
    """A (nodes, jobs) solution as the fused search keeps it: job rows padded to 64-bit words."""
    nodes, jobs = states.shape
    row_words = -(-nodes // 8)
    words = np.zeros(jobs * row_words, dtype=np.uint64)
    words.view(np.int8).reshape(jobs, 8 * row_words)[:, :nodes] = states.T
    return words, row_words


def _matrix(words: np.ndarray, nodes: int, jobs: int) -> np.ndarray:
    return words.view(np.int8).reshape(jobs, -1)[:, :nodes].T.copy()


def _fused_mutants(problem: AllocationProblem, parent: np.ndarray, count: int) -> np.ndarray:
    nodes, jobs = parent.shape
    base_words, row_words = _rows(problem.base)
    start, _ = _rows(parent)
    capacity = problem.capacity.astype(np.int64)
    cdfs = fused.trial_cdfs(jobs)
    st = fused.pcg64.state_of(np.random.default_rng(5))
    out = np.empty((nodes, jobs, count), dtype=np.int8)
    for k in range(count):
        words = start.copy()
        reps = parent.sum(axis=0).astype(np.int64)
        used = (parent > 0).sum(axis=0).astype(np.int64)
        node_total = np.zeros(nodes, dtype=np.int64)
        node_jobs = np.zeros(nodes, dtype=np.int64)
        fused._mutate(
            words.view(np.int8),
            words,
            reps,
            used,
            node_total,
            node_jobs,
            base_words,
            problem.base.sum(axis=0).astype(np.int64),
            (problem.base > 0).sum(axis=0).astype(np.int64),
            capacity,
            row_words,
            cdfs,
            np.empty(jobs, dtype=np.int64),
            st,
        )
        out[:, :, k] = mutant = _matrix(words, nodes, jobs)
        # the counts it keeps are the mutant's
        assert np.array_equal(reps, mutant.sum(axis=0)) and np.array_equal(
            used, (mutant > 0).sum(axis=0)
        )
    return out


def _close(ours: np.ndarray, theirs: np.ndarray, count: int) -> None:
    """Two frequency tables from `count` draws each agree within 5 standard errors."""
    p = (ours + theirs) / 2
    spread = np.sqrt(np.maximum(p * (1 - p), 1.0 / count) * 2 / count)
    assert (np.abs(ours - theirs) <= 5 * spread).all(), np.abs(ours - theirs).max()


def _same_mean(ours: np.ndarray, theirs: np.ndarray) -> None:
    """Per-draw totals (one per mutant) have the same mean within 5 standard errors: a rare
    event's rate, summed over the cells, is seen here when no single cell shows it."""
    spread = np.sqrt(ours.var() / len(ours) + theirs.var() / len(theirs))
    assert abs(ours.mean() - theirs.mean()) <= 5 * max(spread, 1e-9), (ours.mean(), theirs.mean())


@pytest.mark.parametrize("from_base", [False, True])
def test_mutation_has_the_reference_distribution(from_base: bool) -> None:
    """Per cell: how often it changes, grows, empties and how large it ends, over many mutants
    of one solution, against the reference's `AllocationProblem.mutate`. From the current
    allocation a reset changes nothing, so what thinning alone does shows in the totals."""
    problem = random_problem(1, 9, 6, 4)
    parent = problem.repair(
        random_initial(problem, 1, 3)[:, :, 1:2].copy(), np.random.default_rng(0)
    )
    parent = parent[:, :, 0]
    if from_base:  # a current allocation with every job on one to three nodes
        parent = np.zeros((9, 6), dtype=np.int8)
        for j, (nodes, replicas) in enumerate([([0], 2), ([1, 2], 2), ([3], 1), ([4], 3),
                                               ([5, 6, 7], 1), ([8], 4)]):  # fmt: skip
            parent[nodes, j] = replicas
        problem = AllocationProblem(
            parent, problem.max_replicas, problem.capacity, problem.speedups,
            problem.restart_factor,
        )  # fmt: skip
    assert (parent > 0).sum() >= 5
    count = 20000
    ours = _fused_mutants(problem, parent, count)
    stack = np.repeat(parent[:, :, None], count, axis=2)
    theirs = problem.mutate(stack, np.random.default_rng(6))
    for view in (
        lambda s: s != parent[:, :, None],
        lambda s: s > parent[:, :, None],
        lambda s: (s == 0) & (parent[:, :, None] > 0),
    ):
        _close(view(ours).mean(axis=2), view(theirs).mean(axis=2), count)
        _same_mean(view(ours).sum(axis=(0, 1)), view(theirs).sum(axis=(0, 1)))
    for value in range(5):
        _close((ours == value).mean(axis=2), (theirs == value).mean(axis=2), count)


def test_repair_is_the_reference_repair() -> None:
    """Rules 1 and 3 are deterministic: equal to the reference's; rule 2 trims in a random node
    order: which nodes keep replicas has the reference's frequencies."""
    problem = random_problem(3, 9, 6, 4)
    rng = np.random.default_rng(1)
    count = 4000
    density = rng.uniform(0.03, 0.5, size=count)  # sparse ones rarely reach rule 2
    states = (rng.random((9, 6, count)) < density) * rng.integers(1, 5, size=(9, 6, count))
    states = states.astype(np.int8)
    theirs = problem.repair(states.copy(), np.random.default_rng(2))
    st = fused.pcg64.state_of(np.random.default_rng(3))
    ours = np.empty_like(states)
    capacity = problem.capacity.astype(np.int64)
    for k in range(count):
        words, row_words = _rows(states[:, :, k])
        reps = states[:, :, k].sum(axis=0).astype(np.int64)
        used = (states[:, :, k] > 0).sum(axis=0).astype(np.int64)
        node_total = states[:, :, k].sum(axis=1).astype(np.int64)
        fused._repair(
            words.view(np.int8),
            reps,
            used,
            node_total,
            capacity,
            problem.max_replicas,
            8 * row_words,
            np.empty(9, dtype=np.int64),
            np.empty(9, dtype=np.int64),
            st,
        )
        ours[:, :, k] = mutant = _matrix(words, 9, 6)
        assert np.array_equal(reps, mutant.sum(axis=0))
        assert np.array_equal(used, (mutant > 0).sum(axis=0))
        assert np.array_equal(node_total, mutant.sum(axis=1))
    _feasible(problem, ours)
    # solutions rule 2 leaves alone (no job over its cap, before rule 1 even) come out exactly
    # as the reference's
    untouched = (states.sum(axis=0) <= problem.max_replicas[:, None]).all(axis=0)
    assert untouched.sum() > 100
    assert np.array_equal(ours[:, :, untouched], theirs[:, :, untouched])
    for value in range(5):
        _close((ours == value).mean(axis=2), (theirs == value).mean(axis=2), count)


def test_small_planes_are_computed_whole_at_their_first_miss() -> None:
    """A miss of a job with few feasible cells brings all its missing ones (nodes <= replicas <=
    its cap); a job with many brings only what was missed."""
    speedups = np.full((2, 17, 65), np.nan)
    speedups[0, 1, 1] = 1.0  # computed before: not asked for again
    max_replicas = np.array([3, 64])
    n_dim, r_dim = 17, 65
    missing = np.array([(0 * n_dim + 1) * r_dim + 2, (1 * n_dim + 2) * r_dim + 9])
    wanted = fused._with_small_planes(missing, speedups, max_replicas)
    cells = {(int(c) // (n_dim * r_dim), int(c) // r_dim % n_dim, int(c) % r_dim) for c in wanted}
    small = {(0, u, r) for r in range(1, 4) for u in range(1, r + 1)} - {(0, 1, 1)}
    assert cells == small | {(1, 2, 9)}
