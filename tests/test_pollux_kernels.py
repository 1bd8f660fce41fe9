"""Pollux's compiled search against the numpy reference: same searches, draw for draw.

The compiled operators (reprise.policies.pollux.kernels) must leave every search exactly as the
numpy operators of reprise.policies.pollux.search do: the same final front and chosen allocation,
the same statistics, the same speed-ups computed and the same generator state afterwards, since
the next round's search continues from that state. Random problems of several shapes; the
captured searches of a Figure 8(a) run are compared by benchmarks/pollux_replay.py.
"""

from __future__ import annotations

import numpy as np
import pytest
from infra.pollux_problems import random_initial, random_problem

from reprise.policies.pollux import kernels, pcg64
from reprise.policies.pollux.compiled import CompiledOperators
from reprise.policies.pollux.compiled import run_nsga2 as run_compiled
from reprise.policies.pollux.search import (
    ReferenceOperators,
    SearchResult,
    rank_and_crowd,
    run_nsga2,
    survivors,
)


def _same(a: SearchResult, b: SearchResult) -> None:
    assert np.array_equal(a.front, b.front)
    assert a.best == b.best
    assert np.array_equal(a.front_values, b.front_values)
    assert a.stats == b.stats


@pytest.mark.parametrize(
    ("seed", "nodes", "jobs", "capacity", "pop_size", "n_gen"),
    [
        (0, 4, 3, 4, 20, 12),
        (1, 16, 9, 4, 100, 8),
        (2, 16, 24, 4, 100, 6),
        (3, 8, 40, 8, 60, 5),
        (4, 20, 12, 2, 40, 6),  # more than 16 nodes: the per-job node limit applies
        (5, 2, 1, 4, 10, 10),  # one job: crossover cuts nowhere
    ],
)
def test_the_compiled_search_ends_exactly_as_the_numpy_one(
    seed: int, nodes: int, jobs: int, capacity: int, pop_size: int, n_gen: int
) -> None:
    results = []
    states = []
    computed = []
    for compiled in (False, True):
        problem = random_problem(seed, nodes, jobs, capacity)
        rng = np.random.default_rng(seed)
        ops = CompiledOperators(problem) if compiled else None
        results.append(
            run_nsga2(problem, random_initial(problem, seed, 7), rng, pop_size, n_gen, ops)
        )
        states.append(rng.bit_generator.state)
        computed.append(problem.speedups.computed)
    _same(results[0], results[1])
    assert states[0] == states[1]
    assert computed[0] == computed[1]
    assert results[0].stats.generations > 0


def test_repair_and_mutation_draw_and_change_exactly_as_numpy() -> None:
    problem = random_problem(7, 16, 15, 4)
    ref, fast = ReferenceOperators(problem), CompiledOperators(problem)
    raw = random_initial(problem, 7, 120)
    rng_a, rng_b = np.random.default_rng(3), np.random.default_rng(3)
    mutated_a = problem.mutate(raw.copy(), rng_a)
    mutated_b = raw.copy()
    state = pcg64.state_of(rng_b)
    kernels.mutate(mutated_b, fast.base, fast.capacity, state)
    pcg64.store(rng_b, state)
    assert np.array_equal(mutated_a, mutated_b)
    assert np.array_equal(ref.repair(mutated_a, rng_a), fast.repair(mutated_b, rng_b))
    assert rng_a.bit_generator.state == rng_b.bit_generator.state


@pytest.mark.parametrize("solutions", [1, 2, 37])
def test_evaluation_sums_as_numpy_does_for_each_memory_layout(solutions: int) -> None:
    # numpy sums a solution's jobs pairwise where they are contiguous (the search's arrays,
    # made by fancy indexing) and row by row otherwise: the objectives differ in the last bits
    problem = random_problem(11, 16, 40, 4)
    fast = CompiledOperators(problem)
    states = random_initial(problem, 11, 80)
    picked = states[:, :, list(range(0, 2 * solutions, 2))]  # solution-major, as the search has
    assert np.array_equal(problem.evaluate(picked), fast.evaluate(picked))
    c_order = np.ascontiguousarray(picked)
    assert np.array_equal(problem.evaluate(c_order), fast.evaluate(c_order))
    strided = states[:, :, : 2 * solutions : 2]  # neither layout: evaluated by numpy
    assert np.array_equal(problem.evaluate(strided), fast.evaluate(strided))
    if solutions > 2:  # the two layouts' sums do differ: the test can tell them apart
        assert not np.array_equal(problem.evaluate(picked), problem.evaluate(c_order))


@pytest.mark.parametrize("length", [1, 7, 8, 9, 16, 127, 128, 129, 300, 1031])
def test_pairwise_sum_is_numpys(length: int) -> None:
    rng = np.random.default_rng(length)
    values = rng.random(length) * 10 ** rng.uniform(-4, 4, length)
    assert kernels._pairwise_sum(values, 0, length) == values[:, None].sum(axis=0)[0]


def test_ranks_and_crowding_with_ties_and_repeated_points() -> None:
    rng = np.random.default_rng(5)
    # coarse values: many equal objectives, repeated points, fronts of one and two points
    values = np.round(rng.random((200, 2)) * 6) / 6
    values[:3] = [[-1.0, 0.0], [-1.0, 0.0], [-0.0, 0.0]]
    ranks, crowd = rank_and_crowd(values)
    assert np.array_equal(kernels.pareto_ranks(values), ranks)
    assert np.array_equal(kernels.front_crowding(values, ranks), crowd)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_inlined_pcg64_draws_what_numpy_draws(seed: int) -> None:
    ours, numpys = np.random.default_rng(seed), np.random.default_rng(seed)
    state = pcg64.state_of(ours)
    assert np.array_equal(pcg64.doubles(state, 1001), numpys.random(1001))
    for high in (1, 2, 3, 51, 1000, 2**31 + 5):  # Lemire's rejection, 32-bit halves buffered
        assert np.array_equal(pcg64.integers(state, high, 37), numpys.integers(high, size=37))
    for size in (1, 2, 100, 1000):
        mine, theirs = np.arange(size), np.arange(size)
        pcg64.shuffle(state, mine)
        numpys.shuffle(theirs)
        assert np.array_equal(mine, theirs)
    pcg64.store(ours, state)
    assert ours.bit_generator.state == numpys.bit_generator.state
    assert ours.random() == numpys.random()


def test_another_bit_generator_gets_the_numpy_search() -> None:
    results = []
    for compiled in (False, True):
        problem = random_problem(3, 4, 5, 4)
        rng = np.random.Generator(np.random.MT19937(3))
        if compiled:
            results.append(run_compiled(problem, random_initial(problem, 3, 4), rng))
        else:
            results.append(run_nsga2(problem, random_initial(problem, 3, 4), rng))
    _same(results[0], results[1])


@pytest.mark.parametrize("size", [1, 50, 100, 199])
def test_survivors_are_numpys_with_ties_and_repeated_points(size: int) -> None:
    rng = np.random.default_rng(size)
    values = np.round(rng.random((200, 2)) * 9) / 9
    values[:4] = [[-1.0, 0.0], [-1.0, 0.0], [-0.0, 0.0], [0.0, -0.0]]
    fast = CompiledOperators(random_problem(0, 2, 2, 4))
    draws_a, draws_b = np.random.default_rng(9), np.random.default_rng(9)
    got = fast.survivors(values, size, draws_a)
    want = survivors(values, size, draws_b)
    for mine, numpys in zip(got, want, strict=True):
        assert np.array_equal(mine, numpys)
    assert draws_a.bit_generator.state == draws_b.bit_generator.state


def test_nan_objectives_fall_back_to_numpy_survival() -> None:
    values = np.array([[0.0, 1.0], [np.nan, 0.5], [1.0, 0.0], [0.5, 0.5]])
    fast = CompiledOperators(random_problem(0, 2, 2, 4))
    got = fast.survivors(values, 3, np.random.default_rng(1))
    want = survivors(values, 3, np.random.default_rng(1))
    for mine, numpys in zip(got, want, strict=True):
        assert np.array_equal(mine, numpys)
