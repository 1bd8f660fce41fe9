"""The allocation search on compiled operators, draw for draw the numpy reference's: what the
policy runs with the switch `pollux_pymoo_draws` (the default is `fused.py`).

See docs/policies/pollux.md#the-compiled-search. `run_nsga2` here is `search.run_nsga2` with the
operators of `kernels.py`; the result and the generator's state after it are those of the numpy
reference (tests/test_pollux_kernels.py compares them on random problems).
"""

from __future__ import annotations

import numpy as np

from reprise.policies.pollux import kernels, pcg64
from reprise.policies.pollux.search import (
    MAX_MATING_ROUNDS,
    AllocationProblem,
    FloatArray,
    IntArray,
    IntState,
    Population,
    ReferenceOperators,
    SearchResult,
    fill_from_last_front,
    survivors,
)
from reprise.policies.pollux.search import run_nsga2 as run_with


class CompiledOperators(ReferenceOperators):
    """The search's operators on the compiled kernels, for one problem."""

    uses_keys = False

    def __init__(self, problem: AllocationProblem) -> None:
        super().__init__(problem)
        self.base = np.ascontiguousarray(problem.base, dtype=np.int8)
        self.capacity = np.ascontiguousarray(problem.capacity, dtype=np.int64)
        self.max_replicas = np.ascontiguousarray(problem.max_replicas, dtype=np.int64)
        self.factor = np.ascontiguousarray(problem.restart_factor, dtype=np.float64)
        self.share_scale = 1.0 / int(problem.capacity.sum())

    def repair(self, states: IntState, rng: np.random.Generator) -> IntState:
        states = np.ascontiguousarray(states, dtype=np.int8)
        state = pcg64.state_of(rng)
        kernels.repair(states, self.capacity, self.max_replicas, state)
        pcg64.store(rng, state)
        return states

    def evaluate(self, states: IntState) -> FloatArray:
        # numpy's sums over jobs depend on the layout (kernels.objectives): solution-major
        # (what the search's fancy indexing gives) or C order; anything else goes to numpy
        if states.shape[2] <= 1 or states.transpose(2, 0, 1).flags.c_contiguous:
            pairwise = True
        elif states.flags.c_contiguous:
            pairwise = False
        else:
            return self.problem.evaluate(states)
        table = self.problem.speedups
        _, n_dim, r_dim = table.values.shape
        sols_major = states.transpose(2, 0, 1)  # C-contiguous where `pairwise`
        speedup = table.lookup_cells(kernels.speedup_cells(sols_major, n_dim, r_dim))
        result: FloatArray = kernels.objectives(
            sols_major, self.base, speedup, self.factor, self.capacity, self.share_scale, pairwise
        )
        return result

    def offspring(
        self, pop: Population, want: int, rng: np.random.Generator, share: float
    ) -> tuple[IntState, list[bytes], float, int]:
        state = pcg64.state_of(rng)
        kids, share, rounds = kernels.offspring(
            np.ascontiguousarray(pop.states),
            pop.values,
            pop.crowding,
            self.base,
            self.capacity,
            self.max_replicas,
            want,
            share,
            MAX_MATING_ROUNDS,
            state,
        )
        pcg64.store(rng, state)
        kids = kids.transpose(1, 2, 0)  # (nodes, jobs, solutions), each solution contiguous
        return kids, [], share, rounds

    def next_states(self, states: IntState, kids: IntState, idx: IntArray) -> IntState:
        # numpy's fancy indexing over the last axis costs about 2 ns a cell; copying whole
        # solutions (the layout numpy's indexing gives too) costs a fraction of that
        picked = kernels.pick_solutions(
            np.ascontiguousarray(states.transpose(2, 0, 1)),
            np.ascontiguousarray(kids.transpose(2, 0, 1)),
            idx,
        )
        return picked.transpose(1, 2, 0)  # type: ignore[no-any-return]

    def survivors(
        self, values: FloatArray, size: int, rng: np.random.Generator
    ) -> tuple[IntArray, IntArray, FloatArray]:
        if values.shape[1] != 2 or np.isnan(values).any():
            return survivors(values, size, rng)  # the kernels assume two NaN-free objectives
        size = min(size, len(values))
        ranks, crowd, keep, last = kernels.fronts(values, size)
        return fill_from_last_front(keep, last, size, ranks, crowd, rng)


def run_nsga2(
    problem: AllocationProblem, initial: IntState, rng: np.random.Generator
) -> SearchResult:
    """`search.run_nsga2` (population 100, 100 generations) on the compiled operators; they
    reproduce numpy's PCG64 only, so another bit generator gets the numpy operators."""
    if not pcg64.is_pcg64(rng):
        return run_with(problem, initial, rng)
    return run_with(problem, initial, rng, operators=CompiledOperators(problem))
