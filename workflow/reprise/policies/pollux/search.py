"""Pollux's periodic allocation search: a vectorised NSGA-II over replica matrices.

See docs/policies/pollux.md#model.

A solution is a (nodes x jobs) matrix of replica counts; a population is one int8 array of shape
(nodes, jobs, solutions), solutions last so that every per-job and per-node count is a reduction
over an outer axis. The search mirrors the artifact's set-up on pymoo 0.4: population 100,
100 generations counting the initial one, binary tournaments on dominance then crowding, one-point
crossover over job rows (probability 0.9), the artifact's mutation and repair operators, duplicate
elimination, rank-and-crowding survival. Objectives (minimised): minus the power mean (p = -1) of
restart-penalised, share-scaled speed-ups, and minus the cluster utility. All randomness comes
from one seeded numpy Generator.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from dataclasses import dataclass
from typing import Protocol, cast

import numpy as np
import numpy.typing as npt

IntState = npt.NDArray[np.int8]
FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

POP_SIZE = 100
N_GEN = 100
"""Generations as pymoo counts them: the initial population is generation 1."""
CROSSOVER_PROB = 0.9
MAX_MATING_ROUNDS = 100
"""pymoo stops refilling the offspring after this many extra mating rounds (duplicates)."""
RESET_PROB = 0.1
"""Mutation: chance that a job's replicas are reset to the current allocation."""
ZERO_ROW_PROB = 0.1
ZERO_ELEM_PROB = 0.1
"""Mutation: chance that a job is thinned, and then that each of its nodes is emptied."""
MAX_NODES_PER_JOB = 16
RESTART_DELAY = 30.0
"""Seconds lost per (re)start; the objective discounts a changed allocation by it."""
POWER = -1.0
"""Exponent of the power mean of speed-ups (more negative = fairer)."""
SPEEDUP_FLOOR = 1e-3
BREED_MARGIN = 1.25
"""Breed this much more than the expected need: a second breeding costs more than spares."""


class SpeedupSource(Protocol):
    """Computes speed-ups for (job index, nodes, replicas) arrays."""

    def __call__(self, jobs: IntArray, nodes: IntArray, replicas: IntArray) -> FloatArray: ...


@dataclass
class SpeedupTable:
    """Lazily filled speed-up lookup, a (nodes+1, replicas+1) plane per job; NaN = not computed."""

    values: FloatArray
    """(jobs, nodes+1, replicas+1)"""
    source: SpeedupSource
    computed: int = 0

    def __post_init__(self) -> None:
        self.values = np.ascontiguousarray(self.values, dtype=np.float64)

    def lookup(self, nodes: IntArray, replicas: IntArray) -> FloatArray:
        """Speed-ups for (jobs, solutions) arrays of node and replica counts."""
        _, n_dim, r_dim = self.values.shape
        jobs = np.arange(nodes.shape[0], dtype=np.intp)[:, None]
        return self.lookup_cells((jobs * n_dim + nodes) * r_dim + replicas)

    def lookup_cells(self, flat: IntArray) -> FloatArray:
        """Speed-ups at flat indices into `values`, computing (and keeping) the missing ones."""
        _, n_dim, r_dim = self.values.shape
        table = self.values.reshape(-1)  # a view: writes below fill `values`
        vals: FloatArray = table[flat]
        missing = np.isnan(vals)
        if missing.any():
            keys = np.unique(flat[missing])
            jobs, rest = np.divmod(keys, n_dim * r_dim)
            node_counts, replica_counts = np.divmod(rest, r_dim)
            table[keys] = self.source(jobs, node_counts, replica_counts)
            self.computed += len(keys)
            vals = table[flat]
        return vals


@dataclass
class AllocationProblem:
    """One round's search problem; jobs are in priority order (least attained service first)."""

    base: IntState
    """(nodes, jobs): the current allocation."""
    max_replicas: IntArray
    """(jobs,): replica cap per job."""
    capacity: IntArray
    """(nodes,): GPUs per node (every replica needs one GPU)."""
    speedups: SpeedupTable
    restart_factor: FloatArray
    """(jobs,): multiplier of a job's speed-up when its allocation changes."""

    def __post_init__(self) -> None:
        self._base3 = self.base[:, :, None]
        self._base_rows = np.ascontiguousarray(self.base.T)  # (jobs, nodes)
        self._cap_col = self.capacity[:, None].astype(np.int16)
        self._max_col = np.minimum(self.max_replicas, np.iinfo(np.int16).max)[:, None]
        self._factor_col = self.restart_factor[:, None]
        self._share_scale = 1.0 / int(self.capacity.sum())
        self._node_stride = np.arange(self.num_nodes, dtype=np.intp)[None, :]
        self._job_stride = np.arange(self.num_jobs, dtype=np.intp)[None, :]

    @property
    def num_nodes(self) -> int:
        return int(self.base.shape[0])

    @property
    def num_jobs(self) -> int:
        return int(self.base.shape[1])

    def evaluate(self, states: IntState) -> FloatArray:
        """(solutions, 2) objective values to minimise: -fair power mean, -cluster utility."""
        used = states > 0
        replicas = states.sum(axis=0, dtype=np.int16)  # (jobs, solutions)
        speedup = self.speedups.lookup(used.sum(axis=0, dtype=np.int16), replicas)
        # one GPU per replica: a replica's dominant share is 1 / total GPUs, and the scaling makes
        # a whole node's worth of share count as speed-up 1
        scaled = speedup * self._share_scale * self.num_nodes
        restarted = (states != self._base3).any(axis=0)
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            scaled *= np.where(restarted, self._factor_col, 1.0)
            scaled += SPEEDUP_FLOOR
            mean = (np.sum(scaled**POWER, axis=0) / self.num_jobs) ** (1.0 / POWER)
            total = (used.any(axis=1) * self._cap_col).sum(axis=0)  # GPUs of active nodes
            has = replicas > 0
            per_replica = np.where(has, speedup / replicas, 0.0)
            share = np.where(has, replicas / total, 0.0)
            utility = np.sum(per_replica * share, axis=0)
        return np.column_stack([-mean, -utility])

    def _node_cells(self, sols: int, nk: IntArray, kk: IntArray) -> IntArray:
        """Flat indices of (node, solution) pairs across all jobs: (pairs, jobs)."""
        return (nk * (self.num_jobs * sols) + kk)[:, None] + self._job_stride * sols

    def _job_cells(self, sols: int, jk: IntArray, kk: IntArray) -> IntArray:
        """Flat indices of (job, solution) pairs across all nodes: (pairs, nodes)."""
        return (jk * sols + kk)[:, None] + self._node_stride * (self.num_jobs * sols)

    def repair(self, states: IntState, rng: np.random.Generator) -> IntState:
        """Make solutions feasible (in place when contiguous), in the artifact's order of rules.

        1. Per node, at most one multi-node job: once a second multi-node job (in priority order)
           has replicas on a node, that job's and every later job's replicas there are dropped
           (quirk: single-node jobs after it too).
        2. Per job at most `max_replicas` replicas on at most 16 nodes, trimming in a random node
           order.
        3. Per node at most its capacity, earlier (higher-priority) jobs first.
        """
        states = np.ascontiguousarray(states)  # the flat view below must alias `states`
        sols = states.shape[2]
        flat = states.reshape(-1)
        used = states > 0
        multi = used.sum(axis=0, dtype=np.int16) > 1  # (jobs, solutions)
        if multi.any():
            marks = used & multi[None, :, :]
            nk, kk = np.nonzero(marks.sum(axis=1, dtype=np.int16) > 1)
            if len(nk):
                cells = self._node_cells(sols, nk, kk)
                flat[cells[np.cumsum(marks.reshape(-1)[cells], axis=1) > 1]] = 0
        over = states.sum(axis=0, dtype=np.int16) > self._max_col
        if self.num_nodes > MAX_NODES_PER_JOB:
            over |= (states > 0).sum(axis=0) > MAX_NODES_PER_JOB
        jk, kk = np.nonzero(over)
        if len(jk):
            cells = self._job_cells(sols, jk, kk)
            order = np.argsort(rng.random(cells.shape), axis=1)
            cells = np.take_along_axis(cells, order, axis=1)  # nodes in a random order
            capped = np.minimum(np.cumsum(flat[cells], axis=1), self.max_replicas[jk][:, None])
            kept = capped.copy()
            kept[:, 1:] -= capped[:, :-1]
            if self.num_nodes > MAX_NODES_PER_JOB:
                kept[np.cumsum(kept > 0, axis=1) > MAX_NODES_PER_JOB] = 0
            flat[cells] = kept
        nk, kk = np.nonzero(states.sum(axis=1, dtype=np.int16) > self._cap_col)
        if len(nk):
            cells = self._node_cells(sols, nk, kk)
            capped = np.minimum(np.cumsum(flat[cells], axis=1), self.capacity[nk][:, None])
            capped[:, 1:] -= capped[:, :-1].copy()
            flat[cells] = capped
        return states

    def mutate(self, states: IntState, rng: np.random.Generator) -> IntState:
        """The artifact's mutation (in place when contiguous): reset, thin, grow into free GPUs."""
        states = np.ascontiguousarray(states)  # the flat view below must alias `states`
        _, jobs, sols = states.shape
        flat = states.reshape(-1)
        draws = rng.random((2, jobs, sols))
        jk, kk = np.nonzero(draws[0] < RESET_PROB)
        if len(jk):
            flat[self._job_cells(sols, jk, kk)] = self._base_rows[jk]
        jk, kk = np.nonzero(draws[1] < ZERO_ROW_PROB)
        if len(jk):
            cells = self._job_cells(sols, jk, kk)
            flat[cells[rng.random(cells.shape) < ZERO_ELEM_PROB]] = 0
        # grow: on a node with a free GPU each job may grow with chance 1/jobs, a job already on
        # the node also with chance 1/(jobs on the node); the new count is uniform in count..cap
        nk, kk = np.nonzero(states.sum(axis=1, dtype=np.int16) < self._cap_col)
        if len(nk):
            cells = self._node_cells(sols, nk, kk)
            cols = flat[cells]  # (pairs, jobs)
            present = cols > 0
            p_any = 1.0 / jobs
            p_here = 1.0 / np.maximum(present.sum(axis=1, dtype=np.int16), 1)
            p_both = (p_any + p_here - p_any * p_here)[:, None]
            hit = rng.random(cols.shape) < np.where(present, p_both, p_any)
            if hit.any():
                low = cols[hit]
                span = np.broadcast_to(self.capacity[nk][:, None], cols.shape)[hit] - low + 1
                flat[cells[hit]] = low + (rng.random(len(low)) * span).astype(np.int8)
        return states

    def crossover(self, pop: IntState, parents: IntArray, rng: np.random.Generator) -> IntState:
        """One-point crossover over jobs per pair of parents, two children each, in pymoo's order.

        With probability 0.9 the first child takes the second parent's jobs before a random cut
        point and the first parent's after it (the second child the reverse); otherwise the
        children are copies of the parents.
        """
        nodes, jobs, sols = pop.shape
        pairs = len(parents)
        first, second = parents[:, 0], parents[:, 1]
        draws = rng.random(pairs)
        points = rng.integers(jobs, size=pairs)
        swap = (points > self._job_stride.T) & (draws < CROSSOVER_PROB)  # (jobs, pairs)
        src = np.empty((jobs, 2 * pairs), dtype=np.intp)
        src[:, :pairs] = np.where(swap, second, first)
        src[:, pairs:] = np.where(swap, first, second)
        src += self._job_stride.T * sols
        kids = np.take(pop.reshape(nodes, jobs * sols), src.reshape(-1), axis=1)
        return kids.reshape(nodes, jobs, 2 * pairs)


# ------------------------------------------------------------------------------------------------
# NSGA-II machinery


def nondominated_fronts(values: FloatArray, enough: int) -> list[IntArray]:
    """Fronts (index arrays) by Pareto dominance, stopping once `enough` points are ranked."""
    less = np.any(values[:, None, :] < values[None, :, :], axis=2)
    more = np.any(values[:, None, :] > values[None, :, :], axis=2)
    dominates = less & ~more  # [i, j]: i dominates j
    count = dominates.sum(axis=0)
    left = np.ones(len(values), dtype=bool)
    fronts: list[IntArray] = []
    ranked = 0
    while ranked < len(values) and ranked < enough:
        front = np.flatnonzero(left & (count == 0))
        fronts.append(front)
        ranked += len(front)
        left[front] = False
        count = count - dominates[front].sum(axis=0)
    return fronts


def crowding_distance(values: FloatArray) -> FloatArray:
    """NSGA-II crowding distance of one front; repeated points after the first get 0."""
    n_pts, n_obj = values.shape
    if n_pts <= 2:
        return np.full(n_pts, np.inf)
    same = np.all(values[:, None, :] == values[None, :, :], axis=2)
    dup = np.any(np.tril(same, k=-1), axis=1)  # equal to an earlier point
    unique = np.flatnonzero(~dup)
    pts = values[unique]
    order = np.argsort(pts, axis=0, kind="mergesort")
    srt = np.take_along_axis(pts, order, axis=0)
    gaps = np.vstack([srt, np.full(n_obj, np.inf)]) - np.vstack([np.full(n_obj, -np.inf), srt])
    span = srt.max(axis=0) - srt.min(axis=0)
    span = np.where(span == 0, np.nan, span)
    with np.errstate(invalid="ignore"):
        to_prev = gaps[:-1] / span
        to_next = gaps[1:] / span
    to_prev[np.isnan(to_prev)] = 0.0
    to_next[np.isnan(to_next)] = 0.0
    inverse = np.argsort(order, axis=0)
    cols = np.arange(n_obj)
    dist = np.sum(to_prev[inverse, cols] + to_next[inverse, cols], axis=1) / n_obj
    out = np.zeros(n_pts)
    out[unique] = dist
    return out


def pareto_ranks(values: FloatArray) -> IntArray:
    """Front index of every point (0 = non-dominated); fast path for two objectives.

    Sweeping the points in (f1, f2) order, a point belongs to the first front whose latest member
    does not dominate it. That member has the front's smallest (f2, f1) so far, and those keys
    increase with the front index, so a binary search over them finds the front. NaNs or more
    objectives fall back to `nondominated_fronts`.
    """
    n_pts = len(values)
    if values.shape[1] != 2 or np.isnan(values).any():
        ranks = np.zeros(n_pts, dtype=np.int64)
        for k, front in enumerate(nondominated_fronts(values, n_pts)):
            ranks[front] = k
        return ranks
    order = np.lexsort((values[:, 1], values[:, 0]))
    # an earlier point q dominates p exactly when (q.f2, q.f1) < (p.f2, p.f1)
    keys = list(zip(values[order, 1].tolist(), values[order, 0].tolist(), strict=True))
    tails: list[tuple[float, float]] = []
    out = [0] * n_pts
    for pos, key in enumerate(keys):
        k = bisect_left(tails, key)
        if k == len(tails):
            tails.append(key)
        else:
            tails[k] = key
        out[pos] = k
    ranks = np.empty(n_pts, dtype=np.int64)
    ranks[order] = out
    return ranks


def front_crowding(values: FloatArray, ranks: IntArray) -> FloatArray:
    """`crowding_distance` of every point within its front, for all fronts at once."""
    n_pts, n_obj = values.shape
    sizes = np.bincount(ranks)
    # repeated points (same front, same values) after the first get 0 and are left out
    srt = np.lexsort((*[values[:, k] for k in reversed(range(n_obj))], ranks))
    vs = values[srt]
    same = np.all(vs[1:] == vs[:-1], axis=1) & (ranks[srt[1:]] == ranks[srt[:-1]])
    dup = np.zeros(n_pts, dtype=bool)
    dup[srt[1:]] = same
    uniq = np.flatnonzero(~dup)
    u_vals = values[uniq]
    u_rank = ranks[uniq]
    n_u = len(uniq)
    total = np.zeros(n_u)
    starts = np.empty(n_u, dtype=bool)
    ends = np.empty(n_u, dtype=bool)
    with np.errstate(invalid="ignore", divide="ignore"):
        for k in range(n_obj):
            order = np.lexsort((u_vals[:, k], u_rank))
            col = u_vals[order, k]
            fr = u_rank[order]
            starts[0] = True
            np.not_equal(fr[1:], fr[:-1], out=starts[1:])
            ends[:-1] = starts[1:]
            ends[-1] = True
            first = np.flatnonzero(starts)
            last = np.flatnonzero(ends)
            counts = last - first + 1
            span = np.repeat(col[last] - col[first], counts)
            span[span == 0] = np.nan
            prev = np.empty(n_u)
            prev[1:] = col[:-1]
            prev[starts] = -np.inf
            nxt = np.empty(n_u)
            nxt[:-1] = col[1:]
            nxt[ends] = np.inf
            to_prev = (col - prev) / span
            to_next = (nxt - col) / span
            to_prev[np.isnan(to_prev)] = 0.0
            to_next[np.isnan(to_next)] = 0.0
            total[order] += to_prev + to_next
    out = np.zeros(n_pts)
    out[uniq] = total / n_obj
    # fronts of at most two points (repeats counted) are all boundary points
    out[sizes[ranks] <= 2] = np.inf
    return out


@dataclass
class Population:
    states: IntState
    """(nodes, jobs, solutions)"""
    values: FloatArray
    keys: list[bytes]
    """Each solution's bytes (empty where the operators keep no keys: compiled)."""
    rank: IntArray
    crowding: FloatArray

    def __len__(self) -> int:
        return int(self.states.shape[2])


def rank_and_crowd(values: FloatArray) -> tuple[IntArray, FloatArray]:
    """Pareto rank and crowding distance within the front, of every point."""
    ranks = pareto_ranks(values)
    return ranks, front_crowding(values, ranks)


def survivors(
    values: FloatArray, size: int, rng: np.random.Generator
) -> tuple[IntArray, IntArray, FloatArray]:
    """Rank-and-crowding survival: (indices, their ranks, their crowding), front by front.

    The front that does not fit entirely keeps its most isolated points (largest crowding
    distance, ties broken at random); inside the other fronts the index order is kept.
    """
    size = min(size, len(values))
    ranks, crowd = rank_and_crowd(values)
    filled = np.cumsum(np.bincount(ranks))
    cut = int(np.searchsorted(filled, size))  # first front that reaches `size`
    keep = np.flatnonzero(ranks < cut)
    keep = keep[np.argsort(ranks[keep], kind="stable")]
    last = np.flatnonzero(ranks == cut)
    return fill_from_last_front(keep, last, size, ranks, crowd, rng)


def fill_from_last_front(
    keep: IntArray,
    last: IntArray,
    size: int,
    ranks: IntArray,
    crowd: FloatArray,
    rng: np.random.Generator,
) -> tuple[IntArray, IntArray, FloatArray]:
    """`survivors`' end: the whole fronts kept, then the most isolated points of the next.

    numpy's quicksort orders equal crowding distances in an order of its own (it depends on the
    CPU: docs/policies/pollux.md#determinism-across-machines), so this part stays in numpy.
    """
    room = size - len(keep)
    if room < len(last):
        perm = rng.permutation(len(last))
        last = last[perm[np.argsort(crowd[last][perm], kind="quicksort")][::-1][:room]]
    idx = np.concatenate([keep, last])
    return idx, ranks[idx], crowd[idx]


def tournament(pop: Population, n_select: int, rng: np.random.Generator) -> IntArray:
    """Binary tournaments: dominance, then larger crowding, ties at random. -> (n_select, 2)."""
    n_random = n_select * 2 * 2
    n_perms = math.ceil(n_random / len(pop))
    perms = rng.permuted(np.tile(np.arange(len(pop)), (n_perms, 1)), axis=1).reshape(-1)
    perms = perms[:n_random]
    a, b = perms[0::2], perms[1::2]
    fa, fb = pop.values[a], pop.values[b]
    a_better = np.any(fa < fb, axis=1)
    b_better = np.any(fb < fa, axis=1)
    ca, cb = pop.crowding[a], pop.crowding[b]
    coin = rng.random(len(a)) < 0.5
    by_crowd = np.where(ca > cb, a, np.where(ca < cb, b, np.where(coin, a, b)))
    winner = np.where(a_better & ~b_better, a, np.where(b_better & ~a_better, b, by_crowd))
    return winner.reshape(n_select, 2)


def solution_keys(states: IntState) -> list[bytes]:
    """One hashable key per solution (its replica matrix as bytes)."""
    nodes, jobs, sols = states.shape
    if sols == 0 or nodes * jobs == 0:
        return [b""] * sols
    flat = np.ascontiguousarray(np.moveaxis(states, 2, 0)).reshape(sols, nodes * jobs)
    rows = flat.view(np.dtype((np.void, nodes * jobs))).ravel().tolist()
    return cast(list[bytes], rows)


@dataclass
class SearchStats:
    generations: int = 0
    evaluations: int = 0
    mating_rounds: int = 0


@dataclass
class SearchResult:
    front: IntState
    """(nodes, jobs, solutions): the final non-dominated solutions, carried to the next round."""
    best: int
    """Index in `front` of the chosen allocation (best first objective)."""
    front_values: FloatArray
    stats: SearchStats


class _CandidateStream:
    """Offspring candidates, bred ahead in chunks and consumed in pymoo-sized mating rounds.

    pymoo breeds 2 * ceil(need / 2) candidates per mating round and keeps the unique ones, for at
    most 101 rounds. Breeding one candidate does not depend on the others, so cutting one long
    stream into rounds of those sizes gives the same offspring distribution; only the tournament's
    balanced use of parents then spans a chunk instead of a round. Chunks are sized from the
    share of unique candidates seen so far. A mutated candidate that is already known (population
    or accepted offspring) is feasible, so repair would leave it unchanged and it is rejected
    without repairing it.
    """

    def __init__(
        self,
        problem: AllocationProblem,
        pop: Population,
        seen: set[bytes],
        rng: np.random.Generator,
        share: float,
    ) -> None:
        self.problem = problem
        self.share = share
        """Expected share of unique candidates (from the previous generation at first)."""
        self.pop = pop
        self.seen = seen
        self.rng = rng
        self.keys: list[bytes] = []
        self.slots: list[int] = []
        """Column of each candidate in `states`, -1 when known before repair."""
        self.states = np.zeros((*problem.base.shape, 0), dtype=np.int8)
        self.pos = 0
        self.consumed = 0
        self.accepted = 0

    def _breed(self, pairs: int) -> None:
        problem, rng = self.problem, self.rng
        parents = tournament(self.pop, pairs, rng)
        kids = problem.mutate(problem.crossover(self.pop.states, parents, rng), rng)
        keys = solution_keys(kids)
        fresh = [i for i, key in enumerate(keys) if key not in self.seen]
        slots = [-1] * len(keys)
        if fresh:
            repaired = problem.repair(kids[:, :, fresh], rng)
            for col, (i, key) in enumerate(zip(fresh, solution_keys(repaired), strict=True)):
                keys[i] = key
                slots[i] = self.states.shape[2] + col
            self.states = np.concatenate([self.states, repaired], axis=2)
        self.keys.extend(keys)
        self.slots.extend(slots)

    def take(self, count: int, rounds_left: int) -> range:
        """Positions of the next `count` candidates."""
        missing = self.pos + count - len(self.keys)
        if missing > 0:
            if self.consumed:
                self.share = self.accepted / self.consumed
            # enough candidates to fill `count` at the expected unique share, in one breeding
            share = max(self.share / BREED_MARGIN, 1.0 / rounds_left)
            wanted = max(missing, min(math.ceil(count / share), count * rounds_left))
            self._breed(math.ceil(wanted / 2))
        start = self.pos
        self.pos += count
        self.consumed += count
        return range(start, self.pos)


def _offspring(
    problem: AllocationProblem,
    pop: Population,
    want: int,
    rng: np.random.Generator,
    stats: SearchStats,
    share: float,
) -> tuple[IntState, list[bytes], float]:
    """Up to `want` new unique, repaired offspring (pymoo's mating loop with duplicate removal).

    Also returns the share of unique candidates, the breeding estimate for the next generation.
    """
    seen = set(pop.keys)
    stream = _CandidateStream(problem, pop, seen, rng, share)
    cols: list[int] = []
    keys: list[bytes] = []
    rounds = 0
    while len(keys) < want and rounds <= MAX_MATING_ROUNDS:
        need = want - len(keys)
        got = 0
        for i in stream.take(2 * math.ceil(need / 2), MAX_MATING_ROUNDS + 1 - rounds):
            key = stream.keys[i]
            if key not in seen:
                seen.add(key)
                cols.append(stream.slots[i])
                keys.append(key)
                got += 1
                if got == need:
                    break
        stream.accepted += got
        rounds += 1
    stats.mating_rounds += rounds
    return stream.states[:, :, cols], keys, stream.accepted / max(stream.consumed, 1)


class ReferenceOperators:
    """The steps of a search that have a compiled twin: here this module's numpy operators, the
    reference that `compiled.CompiledOperators` (a subclass) must match."""

    uses_keys = True
    """Whether `offspring` needs the population's keys (the numpy one keeps its known set in
    them; the compiled one hashes the matrices itself and returns no keys)."""

    def __init__(self, problem: AllocationProblem) -> None:
        self.problem = problem

    def repair(self, states: IntState, rng: np.random.Generator) -> IntState:
        return self.problem.repair(states, rng)

    def evaluate(self, states: IntState) -> FloatArray:
        return self.problem.evaluate(states)

    def offspring(
        self, pop: Population, want: int, rng: np.random.Generator, share: float
    ) -> tuple[IntState, list[bytes], float, int]:
        """(offspring, their keys, share of unique candidates, mating rounds)."""
        stats = SearchStats()
        kids, keys, share = _offspring(self.problem, pop, want, rng, stats, share)
        return kids, keys, share, stats.mating_rounds

    def survivors(
        self, values: FloatArray, size: int, rng: np.random.Generator
    ) -> tuple[IntArray, IntArray, FloatArray]:
        return survivors(values, size, rng)

    def next_states(self, states: IntState, kids: IntState, idx: IntArray) -> IntState:
        """The next population's matrices: solutions `idx` of the population then offspring."""
        picked: IntState = np.concatenate([states, kids], axis=2)[:, :, idx]
        return picked


def run_nsga2(
    problem: AllocationProblem,
    initial: IntState,
    rng: np.random.Generator,
    pop_size: int = POP_SIZE,
    n_gen: int = N_GEN,
    operators: ReferenceOperators | None = None,
) -> SearchResult:
    """Search from `initial` (repaired and de-duplicated first) and return the final front.

    `operators` defaults to this module's numpy ones; `reprise.policies.pollux.compiled` has
    the compiled ones, which give the same result and generator state.
    """
    ops = operators if operators is not None else ReferenceOperators(problem)
    stats = SearchStats()
    states = ops.repair(initial.astype(np.int8, copy=True), rng)
    keys: list[bytes] = []
    first: list[int] = []
    seen: set[bytes] = set()
    for i, key in enumerate(solution_keys(states)):
        if key not in seen:
            seen.add(key)
            keys.append(key)
            first.append(i)
    states = states[:, :, first]
    values = ops.evaluate(states)
    stats.evaluations += len(keys)
    idx, rank, crowd = ops.survivors(values, len(keys), rng)
    pop = Population(states[:, :, idx], values[idx], [keys[i] for i in idx], rank, crowd)
    share = 1.0
    for _ in range(n_gen - 1):
        kids, kid_keys, share, rounds = ops.offspring(pop, pop_size, rng, share)
        stats.mating_rounds += rounds
        if kids.shape[2] == 0:
            break  # pymoo terminates when no unique offspring can be produced
        kid_values = ops.evaluate(kids)
        stats.evaluations += kids.shape[2]
        values = np.concatenate([pop.values, kid_values])
        idx, rank, crowd = ops.survivors(values, pop_size, rng)
        states = ops.next_states(pop.states, kids, idx)
        all_keys = pop.keys + kid_keys if ops.uses_keys else []
        pop_keys = [all_keys[i] for i in idx] if ops.uses_keys else []
        pop = Population(states, values[idx], pop_keys, rank, crowd)
        stats.generations += 1
    on_front = np.flatnonzero(pop.rank == 0)
    front_values = pop.values[on_front]
    best = int(np.argmin(front_values[:, 0]))
    return SearchResult(pop.states[:, :, on_front], best, front_values, stats)


def carry_over(
    prev_front: IntState | None,
    prev_jobs: list[str],
    jobs: list[str],
    base: IntState,
) -> IntState:
    """Initial population (nodes, jobs, solutions) for this round from the previous round's front.

    Quirk (artifact): rows of jobs present in both rounds are copied in the PREVIOUS round's job
    order into the slots of the common jobs in the CURRENT order, so when the priority order of two
    surviving jobs flips, their allocations are exchanged. New jobs start with no replicas. The
    very first search starts from the current allocation alone.
    """
    if prev_front is None:
        return base[:, :, None].copy()
    now = set(jobs)
    before = set(prev_jobs)
    src = [i for i, key in enumerate(prev_jobs) if key in now]
    dst = [i for i, key in enumerate(jobs) if key in before]
    states = np.zeros((base.shape[0], len(jobs), prev_front.shape[2]), dtype=np.int8)
    if src:
        states[:, dst, :] = prev_front[:, src, :]
    return states
