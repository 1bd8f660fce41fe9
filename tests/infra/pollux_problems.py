"""Random allocation-search problems for the Pollux search tests (shapes chosen by the tests)."""

from __future__ import annotations

import numpy as np

from reprise.policies.pollux.search import AllocationProblem, SpeedupTable


def speedup_source(jobs: np.ndarray, nodes: np.ndarray, replicas: np.ndarray) -> np.ndarray:
    """A speed-up with sub-linear scaling, a per-node cost and per-job differences."""
    r = replicas.astype(float)
    return r**0.83 / (1.0 + 0.07 * np.maximum(nodes - 1, 0)) * (1.0 + 0.013 * jobs)


def random_problem(seed: int, nodes: int, jobs: int, capacity: int) -> AllocationProblem:
    """A feasible current allocation (some jobs hold GPUs on one node), random caps and restart
    factors, and an empty speed-up table."""
    rng = np.random.default_rng(seed)
    base = np.zeros((nodes, jobs), dtype=np.int8)
    free = np.full(nodes, capacity)
    for j in range(jobs):
        n = int(rng.integers(nodes))
        if rng.random() < 0.6 and free[n]:
            take = int(rng.integers(1, free[n] + 1))
            base[n, j] = take
            free[n] -= take
    max_replicas = rng.integers(1, 2 * capacity + 1, size=jobs).astype(np.int64)
    table = SpeedupTable(
        np.full((jobs, nodes + 1, 2 * capacity * nodes + 1), np.nan), speedup_source
    )
    table.values[:, 0, 0] = 0.0
    factor = rng.uniform(0.2, 1.0, size=jobs)
    caps = np.full(nodes, capacity, dtype=np.int64)
    return AllocationProblem(base, max_replicas, caps, table, factor)


def random_initial(problem: AllocationProblem, seed: int, solutions: int) -> np.ndarray:
    """The current allocation plus random (unrepaired) matrices, as a carried-over front."""
    rng = np.random.default_rng(seed + 1000)
    nodes, jobs = problem.base.shape
    cap = int(problem.capacity[0])
    states = (rng.random((nodes, jobs, solutions)) < 0.25) * rng.integers(
        1, cap + 1, size=(nodes, jobs, solutions)
    )
    states[:, :, 0] = problem.base
    return states.astype(np.int8)
