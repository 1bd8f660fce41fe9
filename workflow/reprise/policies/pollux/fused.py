"""Pollux's NSGA-II one candidate at a time: bred, mutated, repaired and hashed in one pass.

See docs/policies/pollux.md#the-fused-search.

The same algorithm as `search.py` (pymoo 0.4's NSGA-II with the artifact's operators), with its
random numbers drawn in another order. pymoo breeds a mating round as whole arrays: every
candidate's mutation draws from one array, then every thinned cell's, then every free node's.
Followed literally (`kernels.py`), that order makes each step a pass over every candidate, with
a trial, a draw and a branch per job. Here each candidate is made whole before the next starts:

- a solution is one arena row: its jobs, each padded to whole 64-bit words of nodes, so a
  one-point crossover over jobs copies words and per-node totals add eight nodes a word; the
  per-job replica and node counts come from the parents' rows and are kept up to date by
  mutation and repair, for the evaluation and the known-solution set;
- how many jobs are reset, thinned, or grow onto a free node is drawn from its binomial
  distribution (one draw, inverting `trial_cdfs`), then which ones uniformly; a Bernoulli trial
  takes a 32-bit half of a 64-bit draw, and a trial that cannot change the matrix (emptying an
  empty cell) is not drawn;
- candidates are bred only while a mating round still needs them (pymoo breeds a whole round
  and drops the ones past its need; they were never looked at).

Every operator keeps the reference's distribution (tests/test_pollux_fused.py); the runs of a
seed are not the reference's (docs/policies/pollux.md#the-fused-search has the three seeds').

The arena holds two regions of `pop_size + want` rows and the candidate's row: the population at
the start of the current region, the generation's accepted offspring after it; survival copies
the survivors to the start of the other region. Speed-ups come from the round's table; when a
cell is not computed yet, `evolve` returns with the cells it needs and `run_fused` has the
goodput model fill them and calls it again.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from reprise.jit import compiled, inlined
from reprise.policies.pollux import kernels, pcg64
from reprise.policies.pollux.pcg64 import next_double, next_uint32
from reprise.policies.pollux.search import (
    CROSSOVER_PROB,
    MAX_MATING_ROUNDS,
    MAX_NODES_PER_JOB,
    N_GEN,
    POP_SIZE,
    POWER,
    RESET_PROB,
    SPEEDUP_FLOOR,
    ZERO_ELEM_PROB,
    ZERO_ROW_PROB,
    AllocationProblem,
    FloatArray,
    IntArray,
    IntState,
    SearchResult,
    SearchStats,
    solution_keys,
)

# ctl: the search's progress between calls of `evolve`
PHASE, GENERATIONS, POP, KIDS, CURRENT, MISSING, EVALUATIONS, ROUNDS, FIRST = range(9)
CTL_SIZE = 9
BREED, EVALUATE = 0, 1
"""PHASE: the next step is breeding a generation / evaluating the bred (or initial) solutions."""
DONE, NEEDS_SPEEDUPS = 0, 1
"""What `evolve` returns."""

_TWO32 = 4294967296.0
_LOW32 = np.uint64(0xFFFFFFFF)
_EVEN_BYTES = np.uint64(0x00FF00FF00FF00FF)
_LOW7 = np.uint64(0x7F7F7F7F7F7F7F7F)
_HIGH_BITS = np.uint64(0x8080808080808080)
_LANES = 255
"""Rows added up in 8-bit lanes before the lanes are emptied (no count overflows a byte)."""


@compiled
def _threshold(p: float) -> Any:
    """The 32-bit bound below which a uniform 32-bit draw has probability p."""
    return np.uint64(min(round(p * _TWO32), _TWO32))


@inlined
def _row_hash(words: Any) -> Any:
    """A 64-bit hash of a solution's words, finished by a mixer."""
    h = np.uint64(14695981039346656037)
    prime = np.uint64(1099511628211)
    for w in words:
        h = (h ^ w) * prime
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xFF51AFD7ED558CCD)
    h ^= h >> np.uint64(33)
    return h


@inlined
def _find(slots: Any, words: Any, hashes: Any, e: int, h: Any) -> int:
    """The slot of the solution at arena row e (hash h) in the known set: the slot that holds it,
    or the empty slot to put it in."""
    mask = len(slots) - 1
    pos = np.int64(h & np.uint64(mask))
    size = words.shape[1]
    while True:
        entry = slots[pos]
        if entry < 0:
            return int(pos)
        if hashes[entry] == h:
            equal = True
            for i in range(size):
                if words[entry, i] != words[e, i]:
                    equal = False
                    break
            if equal:
                return int(pos)
        pos = (pos + 1) & mask


@inlined
def _job_counts(cells: Any, start: int, nodes: int) -> tuple[int, int]:
    """(replicas, nodes used) of the job whose cells start at `start`."""
    replicas = 0
    used = 0
    for n in range(start, start + nodes):
        v = cells[n]
        replicas += v
        used += v > 0
    return replicas, used


@inlined
def _node_counts(words: Any, jobs: int, row_words: int, totals: Any, present: Any) -> None:
    """Replicas per node and jobs per node of one solution (`totals`, `present`), added up a
    64-bit word (8 nodes) at a time: even and odd bytes in 16-bit lanes, and the nonzero flag
    of each byte (cells are 0..127, so a byte is nonzero when adding 0x7f sets its high bit)."""
    for n in range(len(totals)):  # loops, not slices: a slice is an array to count references of
        totals[n] = 0
        present[n] = 0
    nodes = len(totals)
    for k in range(row_words):
        done = 0
        while done < jobs:
            stop = min(done + _LANES, jobs)
            even = np.uint64(0)
            odd = np.uint64(0)
            flags = np.uint64(0)
            for j in range(done, stop):
                w = words[j * row_words + k]
                even += w & _EVEN_BYTES
                odd += (w >> np.uint64(8)) & _EVEN_BYTES
                flags += (((w & _LOW7) + _LOW7) & _HIGH_BITS) >> np.uint64(7)
            for b in range(8):
                n = 8 * k + b
                if n >= nodes:
                    break
                lanes = even if b % 2 == 0 else odd
                totals[n] += np.int64((lanes >> np.uint64(16 * (b // 2))) & np.uint64(0xFFFF))
                present[n] += np.int64((flags >> np.uint64(8 * b)) & np.uint64(0xFF))
            done = stop


@inlined
def _below(st: Any, size: int) -> int:
    """Uniform in 0..size-1 (Lemire's multiply-and-shift on a 32-bit draw, as numpy's
    `integers`); size at most 2**32."""
    span = np.uint64(size)
    m = next_uint32(st) * span
    if (m & _LOW32) < span:
        threshold = (np.uint64(0x100000000) - span) % span
        while (m & _LOW32) < threshold:
            m = next_uint32(st) * span
    return int(m >> np.uint64(32))


@inlined
def _shuffle(st: Any, values: Any, size: int) -> None:
    """Fisher-Yates over values[:size]."""
    for i in range(size - 1, 0, -1):
        k = _below(st, i + 1)
        values[i], values[k] = values[k], values[i]


@inlined
def _pick(perm: Any, pos: Any, st: Any) -> int:
    """The next of the shuffled population positions, reshuffled when used up (pymoo's balanced
    tournament draws)."""
    if pos[0] >= len(perm):
        _shuffle(st, perm, len(perm))
        pos[0] = 0
    pick = perm[pos[0]]
    pos[0] += 1
    return int(pick)


@inlined
def _tournament(values: Any, crowding: Any, perm: Any, pos: Any, st: Any) -> int:
    """A binary tournament: dominance, then larger crowding, then a coin."""
    a = _pick(perm, pos, st)
    b = _pick(perm, pos, st)
    a_better = values[a, 0] < values[b, 0] or values[a, 1] < values[b, 1]
    b_better = values[b, 0] < values[a, 0] or values[b, 1] < values[a, 1]
    if a_better and not b_better:
        return a
    if b_better and not a_better:
        return b
    if crowding[a] > crowding[b]:
        return a
    if crowding[a] < crowding[b]:
        return b
    return a if next_uint32(st) & np.uint64(1) else b


@inlined
def _binomial(cdfs: Any, row: int, trials: int, st: Any) -> int:
    """A binomial count by inversion of its cdf (row `row` of `trial_cdfs`): one draw."""
    u = next_double(st)
    k = 0
    while k < trials and u > cdfs[row, k]:
        k += 1
    return k


@inlined
def _among(values: Any, count: int, value: int) -> bool:
    for i in range(count):  # noqa: SIM110 (numba compiles loops, not generators)
        if values[i] == value:
            return True
    return False


@inlined
def _choose(count: int, size: int, out: Any, st: Any) -> None:
    """`count` distinct numbers of 0..size-1, uniformly, into out[:count] (by rejection: the
    counts here are small against `size`)."""
    for i in range(count):
        while True:
            v = _below(st, size)
            if not _among(out, i, v):
                break
        out[i] = v


@inlined
def _mutate(
    cells: Any,
    words: Any,
    reps: Any,
    used: Any,
    node_total: Any,
    node_jobs: Any,
    base_words: Any,
    base_reps: Any,
    base_used: Any,
    capacity: Any,
    row_words: int,
    cdfs: Any,
    picked: Any,
    st: Any,
) -> None:
    """The artifact's mutation of one candidate, in place: reset, thin, grow into free GPUs.

    Each job is reset to the current allocation with chance 0.1; then each job is thinned with
    chance 0.1 (each of its nodes emptied with chance 0.1); then on every node with a free GPU
    each job grows with chance 1/jobs, or, if already there, also with chance 1/(jobs there), to
    a count uniform in its count..capacity. `node_total`/`node_jobs` come back as the row's.
    """
    jobs = len(reps)
    nodes = len(capacity)
    stride = 8 * row_words
    t_elem = _threshold(ZERO_ELEM_PROB)
    # how many jobs are reset (binomial, by inversion), then which (uniformly); the same for
    # thinning, after every reset (rows are independent: per row, the reference's order)
    for thinning in (False, True):
        count = _binomial(cdfs, jobs + 1 + thinning, jobs, st)
        _choose(count, jobs, picked, st)
        for i in range(count):
            j = picked[i]
            if not thinning:
                for k in range(j * row_words, (j + 1) * row_words):
                    words[k] = base_words[k]
                reps[j] = base_reps[j]
                used[j] = base_used[j]
                continue
            for n in range(j * stride, j * stride + nodes):
                if cells[n] > 0 and next_uint32(st) < t_elem:
                    reps[j] -= cells[n]
                    used[j] -= 1
                    cells[n] = 0
    _node_counts(words, jobs, row_words, node_total, node_jobs)
    p_any = 1.0 / jobs
    for n in range(nodes):
        if node_total[n] >= capacity[n]:
            continue
        p_here = 1.0 / max(node_jobs[n], 1)
        t_both = _threshold(p_any + p_here - p_any * p_here)
        cap = capacity[n]
        for j in range(jobs):  # the jobs already on the node, one trial each
            cell = j * stride + n
            low = cells[cell]
            if low > 0 and next_uint32(st) < t_both:
                new = low + int(next_double(st) * (cap - low + 1))
                cells[cell] = new
                reps[j] += new - low
                node_total[n] += new - low
        # the others: how many grow (binomial, by inversion), then which (uniformly)
        absent = jobs - node_jobs[n]
        hits = _binomial(cdfs, absent, absent, st)
        for h in range(hits):
            while True:
                j = _below(st, jobs)
                if cells[j * stride + n] == 0 and not _among(picked, h, j):
                    break  # not on the node before (nor grown there just now), not picked
            picked[h] = j
            new = int(next_double(st) * (cap + 1))
            if new > 0:
                cells[j * stride + n] = new
                reps[j] += new
                used[j] += 1
                node_total[n] += new


@compiled
def _binomial_row(out: Any, trials: int, p: float) -> None:
    """out[k] = P(Binomial(trials, p) <= k) for k in 0..trials (the last is 1)."""
    out[: trials + 1] = 1.0
    if p >= 1.0:
        out[:trials] = 0.0
        return
    pmf = (1.0 - p) ** trials
    total = 0.0
    for k in range(trials):
        total += pmf
        out[k] = min(total, 1.0)
        pmf *= (trials - k) / (k + 1) * p / (1.0 - p)


@compiled
def trial_cdfs(jobs: int) -> Any:
    """The binomial cdfs that mutation inverts: row a (0..jobs) for a jobs growing onto a node
    with chance 1/jobs each, then rows jobs + 1 and jobs + 2 for the jobs reset and thinned."""
    cdfs = np.ones((jobs + 3, jobs + 1))
    for a in range(jobs + 1):
        _binomial_row(cdfs[a], a, 1.0 / jobs)
    _binomial_row(cdfs[jobs + 1], jobs, RESET_PROB)
    _binomial_row(cdfs[jobs + 2], jobs, ZERO_ROW_PROB)
    return cdfs


@inlined
def _repair(
    cells: Any,
    reps: Any,
    used: Any,
    node_total: Any,
    capacity: Any,
    max_replicas: Any,
    stride: int,
    second: Any,
    order: Any,
    st: Any,
) -> None:
    """Make one candidate feasible, in place, by the reference's three rules in its order
    (`search.AllocationProblem.repair`); `reps`, `used` and `node_total` are kept up to date."""
    jobs = len(reps)
    nodes = len(capacity)
    # rule 1: on each node, from the second multi-node job (priority order) on, every job leaves
    multi = 0
    for j in range(jobs):
        multi += used[j] > 1
    if multi > 1:
        seen = order  # scratch: multi-node jobs met per node
        for n in range(nodes):
            second[n] = jobs
            seen[n] = 0
        for j in range(jobs):
            if used[j] > 1:
                for n in range(nodes):
                    if cells[j * stride + n] > 0:
                        seen[n] += 1
                        if seen[n] == 2:
                            second[n] = j
        for n in range(nodes):
            for j in range(second[n], jobs):
                v = cells[j * stride + n]
                if v > 0:
                    cells[j * stride + n] = 0
                    reps[j] -= v
                    used[j] -= 1
                    node_total[n] -= v
    # rule 2: at most max_replicas replicas on at most 16 nodes, trimmed in a random node order;
    # only the nodes that hold replicas take part (their order is a uniform permutation too)
    many_nodes = nodes > MAX_NODES_PER_JOB
    for j in range(jobs):
        if reps[j] <= max_replicas[j] and not (many_nodes and used[j] > MAX_NODES_PER_JOB):
            continue
        held = 0
        for n in range(nodes):
            if cells[j * stride + n] > 0:
                order[held] = n
                held += 1
        _shuffle(st, order, held)
        running = 0
        capped_before = 0
        placed = 0
        for i in range(held):
            n = order[i]
            cell = j * stride + n
            running += cells[cell]
            capped = min(running, max_replicas[j])
            kept = capped - capped_before
            capped_before = capped
            if kept > 0:
                placed += 1
            if many_nodes and placed > MAX_NODES_PER_JOB:
                kept = 0
            node_total[n] += kept - cells[cell]
            cells[cell] = kept
        reps[j], used[j] = _job_counts(cells, j * stride, nodes)
    # rule 3: per node at most its capacity, earlier (higher-priority) jobs first
    for n in range(nodes):
        cap = capacity[n]
        if node_total[n] <= cap:
            continue
        running = 0
        capped_before = 0
        for j in range(jobs):
            v = cells[j * stride + n]
            running += v
            capped = min(running, cap)
            kept = capped - capped_before
            capped_before = capped
            if kept != v:
                cells[j * stride + n] = kept
                reps[j] += kept - v
                if v > 0 and kept == 0:
                    used[j] -= 1
        node_total[n] = min(node_total[n], cap)


@inlined
def _accept(
    entry: int,
    kid: Any,
    reps: Any,
    used: Any,
    node_total: Any,
    h: Any,
    words: Any,
    arena_reps: Any,
    arena_used: Any,
    restarted: Any,
    active_gpus: Any,
    hashes: Any,
    base_words: Any,
    capacity: Any,
    row_words: int,
) -> None:
    """Store a new solution in the arena with what its evaluation needs."""
    jobs = len(reps)
    for i in range(len(kid)):
        words[entry, i] = kid[i]
    for j in range(jobs):
        arena_reps[entry, j] = reps[j]
        arena_used[entry, j] = used[j]
        changed = False
        for k in range(j * row_words, (j + 1) * row_words):
            changed |= kid[k] != base_words[k]
        restarted[entry, j] = changed
    hashes[entry] = h
    gpus = 0
    for n in range(len(capacity)):
        if node_total[n] > 0:
            gpus += capacity[n]
    active_gpus[entry] = gpus


@compiled
def breed(
    arena: Any, search: Any, first: int, size: int, want: int, max_rounds: int, st: Any
) -> tuple[int, int]:
    """Up to `want` new unique feasible offspring of the population at arena rows
    first..first+size, stored after it: (offspring, mating rounds).

    pymoo's mating loop: a round takes 2 * ceil(need / 2) candidates and keeps the unique ones
    until the need is met, for at most `max_rounds` + 1 rounds. A pair's two children share
    their parents and cut point; the second is made only if the round still needs it.
    """
    words, reps, used, restarted, active_gpus, hashes, values, _, crowding = arena
    base_words, base_reps, base_used, capacity, max_replicas, _, _, cdfs = search
    nodes = len(capacity)
    jobs = reps.shape[1]
    width = words.shape[1]
    row_words = width // jobs
    slots = np.full(1 << max(4, math.ceil(math.log2(4 * (size + want)))), -1, dtype=np.int64)
    for e in range(first, first + size):
        pos = _find(slots, words, hashes, e, hashes[e])
        if slots[pos] < 0:
            slots[pos] = e
    perm = np.arange(first, first + size)
    perm_pos = np.full(1, size, dtype=np.int64)
    scratch = words.shape[0] - 1  # the arena's last row: the candidate being made
    kid = words[scratch]
    kid_cells = kid.view(np.int8)
    kid_reps = np.empty(jobs, dtype=np.int64)
    kid_used = np.empty(jobs, dtype=np.int64)
    node_total = np.empty(nodes, dtype=np.int64)
    node_jobs = np.empty(nodes, dtype=np.int64)
    second = np.empty(nodes, dtype=np.int64)
    order = np.empty(nodes, dtype=np.int64)
    picked = np.empty(jobs, dtype=np.int64)
    t_cross = _threshold(CROSSOVER_PROB)
    accepted = 0
    rounds = 0
    parent_a = parent_b = point = 0
    while accepted < want and rounds <= max_rounds:
        need = want - accepted
        got = 0
        for c in range(2 * ((need + 1) // 2)):
            if c % 2 == 0:
                parent_a = _tournament(values, crowding, perm, perm_pos, st)
                parent_b = _tournament(values, crowding, perm, perm_pos, st)
                crossing = next_uint32(st) < t_cross
                point = _below(st, jobs) if crossing else 0
                low, high = parent_b, parent_a  # first child: b's jobs before the cut
            else:
                low, high = parent_a, parent_b
            cut = point * row_words
            for i in range(cut):
                kid[i] = words[low, i]
            for i in range(cut, width):
                kid[i] = words[high, i]
            for j in range(point):
                kid_reps[j] = reps[low, j]
                kid_used[j] = used[low, j]
            for j in range(point, jobs):
                kid_reps[j] = reps[high, j]
                kid_used[j] = used[high, j]
            _mutate(
                kid_cells,
                kid,
                kid_reps,
                kid_used,
                node_total,
                node_jobs,
                base_words,
                base_reps,
                base_used,
                capacity,
                row_words,
                cdfs,
                picked,
                st,
            )
            _repair(
                kid_cells,
                kid_reps,
                kid_used,
                node_total,
                capacity,
                max_replicas,
                8 * row_words,
                second,
                order,
                st,
            )
            h = _row_hash(kid)
            pos = _find(slots, words, hashes, scratch, h)
            if slots[pos] >= 0:
                continue
            entry = first + size + accepted
            _accept(
                entry,
                kid,
                kid_reps,
                kid_used,
                node_total,
                h,
                words,
                reps,
                used,
                restarted,
                active_gpus,
                hashes,
                base_words,
                capacity,
                row_words,
            )
            slots[pos] = entry
            accepted += 1
            got += 1
            if got == need:
                break
        rounds += 1
    return accepted, rounds


@inlined
def _objectives(
    entry: int,
    reps: Any,
    used: Any,
    restarted: Any,
    active_gpus: Any,
    speedups: Any,
    factor: Any,
    scale: float,
    values: Any,
) -> None:
    """Minus the power mean (p = -1) of restart-penalised, share-scaled speed-ups, and minus the
    cluster utility, of one solution whose speed-ups are all computed."""
    jobs = reps.shape[1]
    mean_sum = 0.0
    utility = 0.0
    total = active_gpus[entry]
    for j in range(jobs):
        r = reps[entry, j]
        s = speedups[j, used[entry, j], r]
        scaled = s * scale
        if restarted[entry, j]:
            scaled *= factor[j]
        scaled += SPEEDUP_FLOOR
        mean_sum += 1.0 / scaled if POWER == -1.0 else scaled**POWER
        if r > 0:
            utility += s / r * (r / total)
    mean = mean_sum / jobs
    values[entry, 0] = -(1.0 / mean if POWER == -1.0 else mean ** (1.0 / POWER))
    values[entry, 1] = -utility
    for m in range(2):
        if np.isnan(values[entry, m]):
            values[entry, m] = np.inf  # an undefined objective ranks last


@compiled
def _by_rank(points: Any, rank: Any, fronts: int) -> tuple[Any, Any]:
    """`points` grouped by front, their order kept within a front (a counting sort), and where
    each front starts (fronts + 1 entries)."""
    starts = np.zeros(fronts + 1, dtype=np.int64)
    for p in points:
        starts[rank[p] + 1] += 1
    for r in range(fronts):
        starts[r + 1] += starts[r]
    fill = starts[:-1].copy()
    out = np.empty(len(points), dtype=np.int64)
    for p in points:
        out[fill[rank[p]]] = p
        fill[rank[p]] += 1
    return out, starts


@inlined
def _gap(high: float, low: float, span: float) -> float:
    """A crowding term: (high - low) / span, 0 where undefined (the reference's NaN to 0)."""
    if span == 0:
        return 0.0
    g = (high - low) / span
    return 0.0 if np.isnan(g) else g


@compiled
def rank_and_crowd(vals: Any) -> tuple[Any, Any, int]:
    """Pareto front and crowding distance of every point of a two-objective, NaN-free set, with
    the reference's conventions (`search.rank_and_crowd`): repeats after the first get 0, the
    ends of a front infinity, a front of at most two points infinity throughout. Returns
    (ranks, crowding, number of fronts).

    One sort serves both objectives: sorted by the first objective, the distinct points of one
    front are in decreasing order of the second (otherwise one would dominate another).
    """
    n_pts = vals.shape[0]
    order = kernels._lex_order(vals[:, 0], vals[:, 1], np.zeros(n_pts))
    # fronts by a sweep in that order: a point joins the first front whose latest member does
    # not dominate it, found by binary search over those members' (second, first) objectives
    tail1 = np.empty(n_pts)
    tail0 = np.empty(n_pts)
    fronts = 0
    rank = np.empty(n_pts, dtype=np.int64)
    for p in order:
        k1, k0 = vals[p, 1], vals[p, 0]
        lo, hi = 0, fronts
        while lo < hi:
            mid = (lo + hi) // 2
            if tail1[mid] < k1 or (tail1[mid] == k1 and tail0[mid] < k0):
                lo = mid + 1
            else:
                hi = mid
        tail1[lo], tail0[lo] = k1, k0
        fronts = max(fronts, lo + 1)
        rank[p] = lo
    grouped, starts = _by_rank(order, rank, fronts)
    crowd = np.zeros(n_pts)
    distinct = np.empty(n_pts, dtype=np.int64)
    for r in range(fronts):
        lo, hi = starts[r], starts[r + 1]
        if hi - lo <= 2:
            for i in range(lo, hi):
                crowd[grouped[i]] = np.inf
            continue
        m = 0
        for i in range(lo, hi):
            p = grouped[i]
            if (
                m
                and vals[p, 0] == vals[distinct[m - 1], 0]
                and vals[p, 1] == vals[distinct[m - 1], 1]
            ):
                continue  # a repeat: crowding 0
            distinct[m] = p
            m += 1
        span0 = vals[distinct[m - 1], 0] - vals[distinct[0], 0]
        span1 = vals[distinct[0], 1] - vals[distinct[m - 1], 1]
        for i in range(m):
            p = distinct[i]
            f0, f1 = vals[p, 0], vals[p, 1]
            prev0 = -np.inf if i == 0 else vals[distinct[i - 1], 0]
            next0 = np.inf if i == m - 1 else vals[distinct[i + 1], 0]
            prev1 = -np.inf if i == m - 1 else vals[distinct[i + 1], 1]
            next1 = np.inf if i == 0 else vals[distinct[i - 1], 1]
            total = _gap(f0, prev0, span0) + _gap(next0, f0, span0)
            total += _gap(f1, prev1, span1) + _gap(next1, f1, span1)
            crowd[p] = total / 2
    return rank, crowd, fronts


@compiled
def _survive(arena: Any, first: int, count: int, size: int, dest: int, st: Any) -> int:
    """Rank-and-crowding survival of arena rows first..first+count into rows dest..: whole fronts
    in row order, then the most isolated points of the front that does not fit (ties in a random
    order). Returns the survivors' count."""
    words, reps, used, restarted, active_gpus, hashes, values, ranks, crowding = arena
    size = min(size, count)
    vals = values[first : first + count].copy()
    rank, crowd, fronts = rank_and_crowd(vals)
    chosen, starts = _by_rank(np.arange(count), rank, fronts)
    cut = 0
    while starts[cut + 1] < size:
        cut += 1
    last = chosen[starts[cut] : starts[cut + 1]]
    room = size - starts[cut]
    if room < len(last):
        _shuffle(st, last, len(last))
        for i in range(1, len(last)):  # stable insertion sort, larger crowding first
            p = last[i]
            m = i
            while m > 0 and crowd[last[m - 1]] < crowd[p]:
                last[m] = last[m - 1]
                m -= 1
            last[m] = p
    for i in range(size):
        src = first + chosen[i]
        to = dest + i
        for k in range(words.shape[1]):
            words[to, k] = words[src, k]
        for j in range(reps.shape[1]):
            reps[to, j] = reps[src, j]
            used[to, j] = used[src, j]
            restarted[to, j] = restarted[src, j]
        active_gpus[to] = active_gpus[src]
        hashes[to] = hashes[src]
        values[to, 0] = vals[chosen[i], 0]
        values[to, 1] = vals[chosen[i], 1]
        ranks[to] = rank[chosen[i]]
        crowding[to] = crowd[chosen[i]]
    return size


@compiled
def evolve(
    arena: Any,
    search: Any,
    scale: float,
    pop_size: int,
    n_gen: int,
    max_rounds: int,
    ctl: Any,
    missing: Any,
    st: Any,
) -> int:
    """Run the search from `ctl`'s point until it ends (DONE) or needs speed-ups that are not
    computed (NEEDS_SPEEDUPS: their flat indices in missing[:ctl[MISSING]]).

    `arena`: (words, reps, used, restarted, active_gpus, hashes, values, ranks, crowding), per
    arena row; `search`: (base_words, base_reps, base_used, capacity, max_replicas, factor,
    speedups, cdfs), fixed for the search (`run_fused` makes both).
    """
    words, reps, used, restarted, active_gpus, _, values, _, _ = arena
    speedups, factor = search[6], search[5]
    region = words.shape[0] // 2
    _, n_dim, r_dim = speedups.shape
    while True:
        cur = ctl[CURRENT]
        if ctl[PHASE] == BREED:
            if ctl[GENERATIONS] >= n_gen - 1:
                return DONE
            kids, rounds = breed(arena, search, cur, ctl[POP], pop_size, max_rounds, st)
            ctl[KIDS] = kids
            ctl[ROUNDS] += rounds
            ctl[PHASE] = EVALUATE
        start = cur + ctl[POP]
        end = start + ctl[KIDS]
        n_missing = 0
        for e in range(start, end):
            for j in range(reps.shape[1]):
                u, r = used[e, j], reps[e, j]
                if np.isnan(speedups[j, u, r]):
                    missing[n_missing] = (j * n_dim + u) * r_dim + r
                    n_missing += 1
        if n_missing:
            ctl[MISSING] = n_missing
            return NEEDS_SPEEDUPS
        ctl[MISSING] = 0
        if ctl[KIDS] == 0:
            return DONE  # pymoo stops when no unique offspring can be made
        for e in range(start, end):
            _objectives(e, reps, used, restarted, active_gpus, speedups, factor, scale, values)
        ctl[EVALUATIONS] += ctl[KIDS]
        dest = region - cur  # the other region
        ctl[POP] = _survive(arena, cur, ctl[POP] + ctl[KIDS], pop_size, dest, st)
        ctl[CURRENT] = dest
        ctl[KIDS] = 0
        ctl[PHASE] = BREED
        if ctl[FIRST]:
            ctl[FIRST] = 0  # the initial population's evaluation is not a generation
        else:
            ctl[GENERATIONS] += 1


@compiled
def _hash_rows(words: Any, hashes: Any, count: int) -> None:
    for e in range(count):
        hashes[e] = _row_hash(words[e])


PLANE_CELLS = 200
"""A job whose feasible speed-up cells are at most this many gets them all at its first miss."""


def _with_small_planes(missing: IntArray, speedups: FloatArray, max_replicas: IntArray) -> IntArray:
    """The missing cells, and every cell not computed yet of each small-planed job among them.

    Each call of the goodput model costs about 0.2 ms before its first cell (a few us a cell
    after that), and a search meets a job's cells a few at a time over its generations; a job
    held to a few replicas has few feasible (nodes, replicas) cells (nodes <= replicas <= its
    cap), so computing them at once saves calls. The values do not depend on when they are
    computed: only the count of computed speed-ups changes.
    """
    _, n_dim, r_dim = speedups.shape
    wanted = [missing]
    for j in np.unique(missing // (n_dim * r_dim)):
        top = min(int(max_replicas[j]), r_dim - 1)
        r = np.arange(1, top + 1)
        if int(np.minimum(r, n_dim - 1).sum()) > PLANE_CELLS:
            continue
        u = np.arange(1, n_dim)
        uu, rr = np.meshgrid(u, r, indexing="ij")
        ok = uu <= rr
        flat = (j * n_dim + uu[ok]) * r_dim + rr[ok]
        wanted.append(flat[np.isnan(speedups.reshape(-1)[flat])])
    return np.concatenate(wanted)


def run_fused(
    problem: AllocationProblem,
    initial: IntState,
    rng: np.random.Generator,
    pop_size: int = POP_SIZE,
    n_gen: int = N_GEN,
) -> SearchResult:
    """Search from `initial` (repaired and de-duplicated first, as the reference does) and return
    the final front. `rng` must be a PCG64 Generator; its state is advanced past the draws."""
    if not pcg64.is_pcg64(rng):
        raise TypeError("the fused search draws from a PCG64 generator (np.random.default_rng)")
    nodes, jobs = problem.base.shape
    table = problem.speedups
    _, n_dim, r_dim = table.values.shape
    most = min(int(problem.max_replicas.max(initial=0)), int(problem.capacity.sum()))
    if n_dim <= nodes or r_dim <= most:
        raise ValueError(
            f"speed-up table of shape {table.values.shape} is too small for {nodes} nodes and "
            f"up to {most} replicas a job"
        )
    capacity = np.ascontiguousarray(problem.capacity, dtype=np.int64)
    max_replicas = np.ascontiguousarray(problem.max_replicas, dtype=np.int64)
    st = pcg64.state_of(rng)
    states = np.array(initial, dtype=np.int8, order="C")
    kernels.repair(states, capacity, max_replicas, st)
    seen: set[bytes] = set()
    unique = []
    for i, key in enumerate(solution_keys(states)):
        if key not in seen:
            seen.add(key)
            unique.append(i)
    states = states[:, :, unique]
    n_init = len(unique)
    region = max(2 * pop_size, n_init)
    rows = 2 * region + 1  # two regions and the candidate's row
    row_words = -(-nodes // 8)  # a job's nodes padded to whole 64-bit words
    words = np.zeros((rows, jobs * row_words), dtype=np.uint64)
    cells = words.view(np.int8).reshape(rows, jobs, 8 * row_words)
    cells[:n_init, :, :nodes] = states.transpose(2, 1, 0)
    reps = np.zeros((rows, jobs), dtype=np.int16)
    used = np.zeros((rows, jobs), dtype=np.int16)
    restarted = np.zeros((rows, jobs), dtype=np.bool_)
    active_gpus = np.zeros(rows, dtype=np.int64)
    reps[:n_init] = states.sum(axis=0, dtype=np.int16).T
    used[:n_init] = (states > 0).sum(axis=0, dtype=np.int16).T
    restarted[:n_init] = (states != problem.base[:, :, None]).any(axis=0).T
    active_gpus[:n_init] = ((states.sum(axis=1) > 0) * capacity[:, None]).sum(axis=0)
    hashes = np.zeros(rows, dtype=np.uint64)
    _hash_rows(words, hashes, n_init)
    values = np.zeros((rows, 2))
    ranks = np.zeros(rows, dtype=np.int64)
    crowding = np.zeros(rows)
    base_words = np.zeros(jobs * row_words, dtype=np.uint64)
    base_words.view(np.int8).reshape(jobs, 8 * row_words)[:, :nodes] = problem.base.T
    base_reps = problem.base.sum(axis=0, dtype=np.int64)
    base_used = (problem.base > 0).sum(axis=0).astype(np.int64)
    factor = np.ascontiguousarray(problem.restart_factor, dtype=np.float64)
    scale = 1.0 / int(capacity.sum()) * nodes
    ctl = np.zeros(CTL_SIZE, dtype=np.int64)
    ctl[PHASE], ctl[KIDS], ctl[FIRST] = EVALUATE, n_init, 1
    missing = np.empty(2 * region * jobs, dtype=np.int64)
    arena = (words, reps, used, restarted, active_gpus, hashes, values, ranks, crowding)
    search = (
        base_words, base_reps, base_used, capacity, max_replicas, factor, table.values,
        trial_cdfs(jobs),
    )  # fmt: skip
    while (
        evolve(arena, search, scale, pop_size, n_gen, MAX_MATING_ROUNDS, ctl, missing, st)
        == NEEDS_SPEEDUPS
    ):
        table.lookup_cells(_with_small_planes(missing[: ctl[MISSING]], table.values, max_replicas))
    pcg64.store(rng, st)
    cur, size = int(ctl[CURRENT]), int(ctl[POP])
    on_front = cur + np.flatnonzero(ranks[cur : cur + size] == 0)
    front = np.ascontiguousarray(cells[on_front, :, :nodes].transpose(2, 1, 0))
    front_values = values[on_front].copy()
    stats = SearchStats(int(ctl[GENERATIONS]), int(ctl[EVALUATIONS]), int(ctl[ROUNDS]))
    return SearchResult(front, int(np.argmin(front_values[:, 0])), front_values, stats)
