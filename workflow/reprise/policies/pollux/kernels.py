"""Pollux's NSGA-II generation, compiled: breeding, evaluation, ranking and crowding as loops.

See docs/policies/pollux.md#the-compiled-search.

These are the operators of `search.py` (the numpy reference) written as numba loops. They draw
the same random numbers in the same order, from the generator's PCG64 state copied into an array
(`pcg64.py`), and they do the same floating-point operations in the same order, so a search ends
with the same population, front, statistics and generator state as the reference. What numpy
sorts without a stable order stays in numpy: the survivors' tie order among equal crowding
distances (`search.survivors`).

Arrays keep the reference's layout: a population is (nodes, jobs, solutions) int8.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from reprise.jit import compiled
from reprise.policies.pollux.pcg64 import doubles, integers, next_double, shuffle
from reprise.policies.pollux.search import (
    BREED_MARGIN,
    CROSSOVER_PROB,
    MAX_NODES_PER_JOB,
    POWER,
    RESET_PROB,
    SPEEDUP_FLOOR,
    ZERO_ELEM_PROB,
    ZERO_ROW_PROB,
)

# ------------------------------------------------------------------------------------------------
# repair and mutation (the reference's AllocationProblem.repair / .mutate)


@compiled
def _job_totals(states: Any) -> tuple[Any, Any]:
    """(jobs, solutions) replicas and nodes used, summed node by node (solutions innermost)."""
    nodes, jobs, sols = states.shape
    replicas = np.zeros((jobs, sols), dtype=np.int16)
    used = np.zeros((jobs, sols), dtype=np.int16)
    for n in range(nodes):
        for j in range(jobs):
            row = states[n, j]
            r = replicas[j]
            u = used[j]
            for k in range(sols):
                r[k] += row[k]
                u[k] += row[k] > 0
    return replicas, used


@compiled
def _node_totals(states: Any) -> tuple[Any, Any]:
    """(nodes, solutions) replicas per node and jobs present per node."""
    nodes, jobs, sols = states.shape
    totals = np.zeros((nodes, sols), dtype=np.int16)
    present = np.zeros((nodes, sols), dtype=np.int16)
    for n in range(nodes):
        t = totals[n]
        c = present[n]
        for j in range(jobs):
            row = states[n, j]
            for k in range(sols):
                t[k] += row[k]
                c[k] += row[k] > 0
    return totals, present


@compiled
def _random_order(st: Any, order: Any, keys: Any) -> None:
    """`order` = argsort of len(order) fresh uniform draws (distinct: any sort gives it)."""
    size = len(order)
    for i in range(size):
        keys[i] = next_double(st)
    for i in range(size):  # insertion sort of the indices by their draws
        order[i] = i
        m = i
        while m > 0 and keys[order[m - 1]] > keys[i]:
            order[m] = order[m - 1]
            m -= 1
        order[m] = i


@compiled
def repair(states: Any, capacity: Any, max_replicas: Any, st: Any) -> None:
    """Make every solution feasible, in place: the reference's three rules, draws in its order.

    The reference draws the random node order of rule 2 for all over-limit (job, solution) pairs
    at once, jobs outer and solutions inner; rule 2 changes only its own job's row, so doing it
    pair by pair in that order is the same.
    """
    nodes, jobs, sols = states.shape
    # rule 1: from the second multi-node job on a node, that job and every later one lose the node;
    # the same pass adds up what rules 2 and 3 need (per job and per node, after rule 1)
    _, used = _job_totals(states)
    replicas = np.zeros((jobs, sols), dtype=np.int16)
    used_after = np.zeros((jobs, sols), dtype=np.int16)
    totals = np.zeros((nodes, sols), dtype=np.int16)
    seen = np.zeros(sols, dtype=np.int16)
    for n in range(nodes):
        seen[:] = 0
        node_total = totals[n]
        for j in range(jobs):
            row = states[n, j]
            multi = used[j]
            rep = replicas[j]
            on = used_after[j]
            for k in range(sols):
                seen[k] += (multi[k] > 1) & (row[k] > 0)
                row[k] *= seen[k] <= 1
                rep[k] += row[k]
                on[k] += row[k] > 0
                node_total[k] += row[k]
    # rule 2: at most max_replicas replicas on at most MAX_NODES_PER_JOB nodes, random node order
    many_nodes = nodes > MAX_NODES_PER_JOB
    order = np.empty(nodes, dtype=np.int64)
    keys = np.empty(nodes)
    for j in range(jobs):
        for k in range(sols):
            if replicas[j, k] <= max_replicas[j] and not (
                many_nodes and used_after[j, k] > MAX_NODES_PER_JOB
            ):
                continue
            _random_order(st, order, keys)
            running = 0
            capped_before = 0
            placed = 0
            for n in order:
                running += states[n, j, k]
                capped = min(running, max_replicas[j])
                kept = capped - capped_before
                capped_before = capped
                if kept > 0:
                    placed += 1
                if many_nodes and placed > MAX_NODES_PER_JOB:
                    kept = 0
                totals[n, k] += kept - states[n, j, k]
                states[n, j, k] = kept
    # rule 3: per node at most its capacity, earlier (higher-priority) jobs first
    running_k = np.zeros(sols, dtype=np.int16)
    capped_k = np.zeros(sols, dtype=np.int16)
    for n in range(nodes):
        cap = capacity[n]
        over = totals[n] > cap
        if not over.any():
            continue
        running_k[:] = 0
        capped_k[:] = 0
        for j in range(jobs):
            row = states[n, j]
            for k in range(sols):
                if over[k]:
                    running_k[k] += row[k]
                    capped = min(running_k[k], cap)
                    row[k] = capped - capped_k[k]
                    capped_k[k] = capped


@compiled
def mutate(states: Any, base: Any, capacity: Any, st: Any) -> None:
    """The reference's mutation, in place: reset, thin, grow into free GPUs; draws in its order."""
    nodes, jobs, sols = states.shape
    draws = doubles(st, 2 * jobs * sols).reshape((2, jobs, sols))
    for j in range(jobs):
        for k in range(sols):
            if draws[0, j, k] < RESET_PROB:
                for n in range(nodes):
                    states[n, j, k] = base[n, j]
    for j in range(jobs):
        for k in range(sols):
            if draws[1, j, k] < ZERO_ROW_PROB:
                for n in range(nodes):
                    if next_double(st) < ZERO_ELEM_PROB:
                        states[n, j, k] = 0
    # grow: every (node, solution) with a free GPU draws one number per job (node outer, then
    # solution, then job: one array); the new counts of all the hits are drawn afterwards
    totals, present = _node_totals(states)
    p_any = 1.0 / jobs
    # the (node, solution) pairs with a free GPU, node outer: only their cells draw
    pair_n = np.empty(nodes * sols, dtype=np.int64)
    pair_k = np.empty(nodes * sols, dtype=np.int64)
    p_both = np.empty(nodes * sols)
    free = 0
    for n in range(nodes):
        for k in range(sols):
            if totals[n, k] < capacity[n]:
                p_here = 1.0 / max(present[n, k], 1)
                pair_n[free], pair_k[free] = n, k
                p_both[free] = p_any + p_here - p_any * p_here
                free += 1
    if free == 0:
        return
    chances = doubles(st, free * jobs)
    hits = np.empty(free * jobs, dtype=np.int64)
    n_hits = 0
    for pair in range(free):
        n, k = pair_n[pair], pair_k[pair]
        both = p_both[pair]
        for j in range(jobs):
            chance = both if states[n, j, k] > 0 else p_any
            if chances[pair * jobs + j] < chance:
                hits[n_hits] = pair * jobs + j
                n_hits += 1
    if n_hits == 0:
        return
    hits = hits[:n_hits]
    values = doubles(st, n_hits)
    for h in range(n_hits):
        pair, j = divmod(hits[h], jobs)
        n, k = pair_n[pair], pair_k[pair]
        low = states[n, j, k]
        span = capacity[n] - low + 1
        states[n, j, k] = low + np.int8(int(values[h] * span))


# ------------------------------------------------------------------------------------------------
# selection and crossover (the reference's tournament and AllocationProblem.crossover)


@compiled
def tournament(values: Any, crowding: Any, n_select: int, st: Any) -> Any:
    """Binary tournaments on dominance, then crowding, then a coin: (n_select, 2) indices.

    The reference shuffles rows of 0..P-1 with `Generator.permuted(axis=1)`, which shuffles each
    row in turn exactly as `Generator.shuffle` does.
    """
    size = len(crowding)
    n_random = n_select * 4
    n_perms = (n_random + size - 1) // size
    perms = np.empty(n_perms * size, dtype=np.int64)
    for r in range(n_perms):
        row = np.arange(size)
        shuffle(st, row)
        perms[r * size : (r + 1) * size] = row
    coin = doubles(st, n_select * 2)
    winners = np.empty((n_select, 2), dtype=np.int64)
    n_obj = values.shape[1]
    for t in range(n_select * 2):
        a = perms[2 * t]
        b = perms[2 * t + 1]
        a_better = False
        b_better = False
        for m in range(n_obj):
            if values[a, m] < values[b, m]:
                a_better = True
            if values[b, m] < values[a, m]:
                b_better = True
        if a_better and not b_better:
            win = a
        elif b_better and not a_better:
            win = b
        elif crowding[a] > crowding[b]:
            win = a
        elif crowding[a] < crowding[b]:
            win = b
        elif coin[t] < 0.5:
            win = a
        else:
            win = b
        winners[t // 2, t % 2] = win
    return winners


@compiled
def crossover(pop: Any, parents: Any, st: Any) -> Any:
    """One-point crossover over jobs, two children per pair (first children, then second ones)."""
    nodes, jobs, _ = pop.shape
    pairs = parents.shape[0]
    draws = doubles(st, pairs)
    points = integers(st, jobs, pairs)
    # per (job, pair): the parent the first child copies; the second child copies the other
    src_a = np.empty((jobs, pairs), dtype=np.int64)
    src_b = np.empty((jobs, pairs), dtype=np.int64)
    for j in range(jobs):
        for p in range(pairs):
            swap = draws[p] < CROSSOVER_PROB and points[p] > j
            src_a[j, p] = parents[p, 1] if swap else parents[p, 0]
            src_b[j, p] = parents[p, 0] if swap else parents[p, 1]
    kids = np.empty((nodes, jobs, 2 * pairs), dtype=np.int8)
    for n in range(nodes):
        for j in range(jobs):
            out = kids[n, j]
            src = pop[n, j]
            a = src_a[j]
            b = src_b[j]
            for p in range(pairs):
                out[p] = src[a[p]]
                out[pairs + p] = src[b[p]]
    return kids


# ------------------------------------------------------------------------------------------------
# the set of known solutions (the reference keeps their bytes in a Python set)


@compiled
def _hashes(states: Any) -> Any:
    """A 64-bit FNV-1a hash of every solution's matrix."""
    nodes, jobs, sols = states.shape
    h = np.full(sols, np.uint64(14695981039346656037), dtype=np.uint64)
    prime = np.uint64(1099511628211)
    for n in range(nodes):
        for j in range(jobs):
            row = states[n, j]
            for k in range(sols):
                h[k] = (h[k] ^ np.uint64(np.uint8(row[k]))) * prime
    return h


# The known set is three arrays: `slots`, an open-addressing table (a power of two long) of entry
# numbers, -1 where empty; `store`, the entries' matrices (entries, nodes, jobs); `stored_hash`.


@compiled
def _find(slots: Any, store: Any, stored_hash: Any, states: Any, k: int, h: np.uint64) -> int:
    """The slot of solution k of `states` (hash h): where it is stored, or the empty slot."""
    mask = len(slots) - 1
    nodes, jobs, _ = states.shape
    pos = np.int64(h & np.uint64(mask))
    while True:
        entry = slots[pos]
        if entry < 0:
            return int(pos)
        if stored_hash[entry] == h:
            equal = True
            for n in range(nodes):
                for j in range(jobs):
                    if store[entry, n, j] != states[n, j, k]:
                        equal = False
                        break
                if not equal:
                    break
            if equal:
                return int(pos)
        pos = (pos + 1) & mask


@compiled
def _remember(
    slots: Any, store: Any, stored_hash: Any, count: int, states: Any, k: int, h: np.uint64
) -> int:
    """Add solution k of `states` (hash h, not yet known); returns the new count."""
    pos = _find(slots, store, stored_hash, states, k, h)
    store[count] = states[:, :, k]
    stored_hash[count] = h
    slots[pos] = count
    return count + 1


# ------------------------------------------------------------------------------------------------
# one generation's offspring (the reference's _offspring and _CandidateStream)


@compiled
def _known_set(pop: Any, entries: int) -> tuple[Any, Any, Any, int]:
    """A known set with room for `entries` solutions, holding the population's distinct ones:
    (slots, store, stored_hash, count)."""
    nodes, jobs, size = pop.shape
    slots = np.full(1 << max(4, math.ceil(math.log2(4 * entries))), -1, dtype=np.int64)
    store = np.empty((entries, nodes, jobs), dtype=np.int8)
    stored_hash = np.empty(entries, dtype=np.uint64)
    known = 0
    pop_hash = _hashes(pop)
    for k in range(size):
        if slots[_find(slots, store, stored_hash, pop, k, pop_hash[k])] < 0:
            known = _remember(slots, store, stored_hash, known, pop, k, pop_hash[k])
    return slots, store, stored_hash, known


@compiled
def _repaired_fresh(
    kids: Any, slots: Any, store: Any, stored_hash: Any, capacity: Any, max_replicas: Any, st: Any
) -> tuple[Any, Any]:
    """The bred candidates not yet known (their indices) and those repaired; a known one is
    feasible, so repair would leave it as it is and draw nothing for it."""
    n_kids = kids.shape[2]
    kid_hash = _hashes(kids)
    fresh = np.empty(n_kids, dtype=np.int64)
    n_fresh = 0
    for i in range(n_kids):
        if slots[_find(slots, store, stored_hash, kids, i, kid_hash[i])] < 0:
            fresh[n_fresh] = i
            n_fresh += 1
    batch = kids[:, :, fresh[:n_fresh]]
    repair(batch, capacity, max_replicas, st)
    return fresh[:n_fresh], batch


@compiled
def _append_candidates(
    repaired: Any,
    repaired_hash: Any,
    n_repaired: int,
    cand_col: Any,
    n_cand: int,
    n_kids: int,
    fresh: Any,
    batch: Any,
) -> tuple[Any, Any, Any]:
    """Add a breeding's repaired candidates (`batch`, bred as numbers `fresh` of `n_kids`) to
    the stream, growing its arrays when full; the others get column -1 (known before repair)."""
    nodes, jobs, _ = repaired.shape
    n_fresh = len(fresh)
    if n_repaired + n_fresh > repaired.shape[2]:
        room = 2 * (n_repaired + n_fresh)
        grown = np.empty((nodes, jobs, room), dtype=np.int8)
        grown[:, :, :n_repaired] = repaired[:, :, :n_repaired]
        repaired = grown
        grown_hash = np.empty(room, dtype=np.uint64)
        grown_hash[:n_repaired] = repaired_hash[:n_repaired]
        repaired_hash = grown_hash
    repaired[:, :, n_repaired : n_repaired + n_fresh] = batch
    repaired_hash[n_repaired : n_repaired + n_fresh] = _hashes(batch)
    if n_cand + n_kids > len(cand_col):
        longer = np.empty(2 * (n_cand + n_kids), dtype=np.int64)
        longer[:n_cand] = cand_col[:n_cand]
        cand_col = longer
    cand_col[n_cand : n_cand + n_kids] = -1
    for f in range(n_fresh):
        cand_col[n_cand + fresh[f]] = n_repaired + f
    return repaired, repaired_hash, cand_col


@compiled
def offspring(
    pop: Any,
    values: Any,
    crowding: Any,
    base: Any,
    capacity: Any,
    max_replicas: Any,
    want: int,
    share: float,
    max_rounds: int,
    st: Any,
) -> tuple[Any, float, int]:
    """Up to `want` new unique repaired offspring: (states as (solutions, nodes, jobs), share of
    unique candidates, mating rounds).

    Candidates are bred ahead in chunks sized from the expected share of unique ones and taken
    in pymoo-sized mating rounds, exactly as the reference's candidate stream does.
    """
    nodes, jobs, size = pop.shape
    slots, store, stored_hash, known = _known_set(pop, size + want)
    accepted_cols = np.empty(want, dtype=np.int64)
    n_accepted = 0
    # the stream: repaired candidates with their hashes, and per candidate its column there
    # (-1: known before repair)
    repaired = np.empty((nodes, jobs, max(2 * want, 2)), dtype=np.int8)
    repaired_hash = np.empty(max(2 * want, 2), dtype=np.uint64)
    n_repaired = 0
    cand_col = np.empty(max(2 * want, 2), dtype=np.int64)
    n_cand = 0
    pos = 0
    consumed = 0
    stream_accepted = 0
    rounds = 0
    while n_accepted < want and rounds <= max_rounds:
        need = want - n_accepted
        count = 2 * ((need + 1) // 2)
        rounds_left = max_rounds + 1 - rounds
        missing = pos + count - n_cand
        if missing > 0:
            if consumed:
                share = stream_accepted / consumed
            expected = max(share / BREED_MARGIN, 1.0 / rounds_left)
            wanted = max(missing, min(math.ceil(count / expected), count * rounds_left))
            parents = tournament(values, crowding, (wanted + 1) // 2, st)
            kids = crossover(pop, parents, st)
            mutate(kids, base, capacity, st)
            n_kids = kids.shape[2]
            fresh, batch = _repaired_fresh(
                kids, slots, store, stored_hash, capacity, max_replicas, st
            )
            repaired, repaired_hash, cand_col = _append_candidates(
                repaired, repaired_hash, n_repaired, cand_col, n_cand, n_kids, fresh, batch
            )
            n_repaired += len(fresh)
            n_cand += n_kids
        start = pos
        pos += count
        consumed += count
        got = 0
        for i in range(start, start + count):
            col = cand_col[i]
            # a candidate known before repair is still known: the set only grows
            if col < 0:
                continue
            h = repaired_hash[col]
            if slots[_find(slots, store, stored_hash, repaired, col, h)] >= 0:
                continue
            known = _remember(slots, store, stored_hash, known, repaired, col, h)
            accepted_cols[n_accepted] = col
            n_accepted += 1
            got += 1
            if got == need:
                break
        stream_accepted += got
        rounds += 1
    # solution-major, the layout numpy gives `repaired[:, :, cols]` (see `objectives`)
    out = np.empty((n_accepted, nodes, jobs), dtype=np.int8)
    for i in range(n_accepted):
        out[i] = repaired[:, :, accepted_cols[i]]
    return out, stream_accepted / max(consumed, 1), rounds


@compiled
def pick_solutions(states_sm: Any, kids_sm: Any, idx: Any) -> Any:
    """Solution-major (len(idx), nodes, jobs): solution i is number idx[i] of `states_sm`
    followed by `kids_sm` (both solution-major, (solutions, nodes, jobs))."""
    size, nodes, jobs = states_sm.shape
    out = np.empty((len(idx), nodes, jobs), dtype=np.int8)
    for i in range(len(idx)):
        c = idx[i]
        if c < size:
            out[i] = states_sm[c]
        else:
            out[i] = kids_sm[c - size]
    return out


# ------------------------------------------------------------------------------------------------
# evaluation (the reference's SpeedupTable.lookup / AllocationProblem.evaluate)


@compiled
def speedup_cells(sols_major: Any, n_dim: int, r_dim: int) -> Any:
    """Flat index into the (jobs, nodes+1, replicas+1) speed-up table per (job, solution).

    Takes the population solution-major, (solutions, nodes, jobs): what the search evaluates
    (see `objectives`), so that each solution's matrix is read contiguously.
    """
    sols, nodes, jobs = sols_major.shape
    flat = np.empty((jobs, sols), dtype=np.int64)
    replicas = np.empty(jobs, dtype=np.int64)
    used = np.empty(jobs, dtype=np.int64)
    for k in range(sols):
        replicas[:] = 0
        used[:] = 0
        for n in range(nodes):
            row = sols_major[k, n]
            for j in range(jobs):
                v = row[j]
                replicas[j] += v
                used[j] += v > 0
        for j in range(jobs):
            flat[j, k] = (j * n_dim + used[j]) * r_dim + replicas[j]
    return flat


@compiled
def _block_sum(a: Any, lo: int, n: int) -> float:
    """numpy's summation of at most 128 values: in order below 8, else eight running sums."""
    if n < 8:
        res = 0.0
        for i in range(lo, lo + n):
            res += a[i]
        return res
    r0, r1, r2, r3 = a[lo], a[lo + 1], a[lo + 2], a[lo + 3]
    r4, r5, r6, r7 = a[lo + 4], a[lo + 5], a[lo + 6], a[lo + 7]
    i = 8
    while i < n - (n % 8):
        b = lo + i
        r0 += a[b]
        r1 += a[b + 1]
        r2 += a[b + 2]
        r3 += a[b + 3]
        r4 += a[b + 4]
        r5 += a[b + 5]
        r6 += a[b + 6]
        r7 += a[b + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        res += a[lo + i]
        i += 1
    return float(res)


@compiled
def _split(n: int) -> int:
    half = n // 2
    return half - half % 8


@compiled
def _pairwise_sum(a: Any, lo: int, n: int) -> float:
    """numpy's pairwise summation of a contiguous run: above 128 values, the sum of two halves.

    Without recursion (numba cannot reload a cached recursive function): a stack of the
    halves still to add, each frame at stage 0 (not started), 1 (left half pending) or 2
    (right half pending, left sum kept).
    """
    if n <= 128:
        return _block_sum(a, lo, n)
    f_lo = np.empty(64, dtype=np.int64)
    f_n = np.empty(64, dtype=np.int64)
    f_stage = np.zeros(64, dtype=np.int64)
    f_left = np.zeros(64)
    f_lo[0], f_n[0], f_stage[0] = lo, n, 0
    top = 1
    result = 0.0
    while top > 0:
        f = top - 1
        if f_stage[f] == 0 and f_n[f] > 128:
            f_stage[f] = 1
            f_lo[top], f_n[top], f_stage[top] = f_lo[f], _split(f_n[f]), 0
            top += 1
            continue
        # a finished range: a block, or whose two halves are added
        if f_stage[f] == 0:
            result = _block_sum(a, f_lo[f], f_n[f])
        top -= 1
        while top > 0:
            parent = top - 1
            if f_stage[parent] == 1:
                f_left[parent] = result
                f_stage[parent] = 2
                half = _split(f_n[parent])
                f_lo[top], f_n[top], f_stage[top] = f_lo[parent] + half, f_n[parent] - half, 0
                top += 1
                break
            result = f_left[parent] + result
            top -= 1
    return result


@compiled
def objectives(
    sols_major: Any,
    base: Any,
    speedup: Any,
    factor: Any,
    capacity: Any,
    share_scale: float,
    pairwise: bool,
) -> Any:
    """(solutions, 2): minus the power mean of scaled speed-ups, minus the cluster utility.

    The population comes solution-major, (solutions, nodes, jobs). Sums over jobs are numpy's,
    which depend on the memory layout of the reference's arrays: where a solution's jobs are
    contiguous (`pairwise`) numpy sums them pairwise, otherwise it adds the jobs' rows in order.
    x ** -1 is numpy's reciprocal.
    """
    sols, nodes, jobs = sols_major.shape
    out = np.empty((sols, 2))
    mean_terms = np.empty(jobs)
    utility_terms = np.empty(jobs)
    replicas = np.empty(jobs, dtype=np.int64)
    restarted = np.empty(jobs, dtype=np.bool_)
    for k in range(sols):
        replicas[:] = 0
        restarted[:] = False
        total = 0
        for n in range(nodes):
            row = sols_major[k, n]
            was = base[n]
            active = False
            for j in range(jobs):
                v = row[j]
                replicas[j] += v
                active |= v > 0
                restarted[j] |= v != was[j]
            if active:
                total += capacity[n]
        mean_sum = 0.0
        utility = 0.0
        for j in range(jobs):
            s = speedup[j, k]
            scaled = s * share_scale * nodes
            scaled *= factor[j] if restarted[j] else 1.0
            scaled += SPEEDUP_FLOOR
            term = 1.0 / scaled if POWER == -1.0 else scaled**POWER
            mean_sum = term if j == 0 else mean_sum + term
            r = replicas[j]
            part = s / r * (r / total) if r > 0 else 0.0
            utility = part if j == 0 else utility + part
            mean_terms[j] = term
            utility_terms[j] = part
        if pairwise:
            mean_sum = _pairwise_sum(mean_terms, 0, jobs)
            utility = _pairwise_sum(utility_terms, 0, jobs)
        mean = mean_sum / jobs
        out[k, 0] = -(1.0 / mean if POWER == -1.0 else mean ** (1.0 / POWER))
        out[k, 1] = -utility
    return out


# ------------------------------------------------------------------------------------------------
# Pareto ranks and crowding (the reference's pareto_ranks / front_crowding)


@compiled
def _before(a: Any, b: Any, c: Any, i: int, j: int) -> bool:
    """Point i sorts before point j by the keys (a, b, c), compared in that order."""
    if a[i] != a[j]:
        return bool(a[i] < a[j])
    if b[i] != b[j]:
        return bool(b[i] < b[j])
    return bool(c[i] < c[j])


@compiled
def _lex_order(a: Any, b: Any, c: Any) -> Any:
    """Indices sorted by (a, b, c), equal keys in index order: numpy's lexsort((c, b, a)).

    A bottom-up merge sort: stable, so it equals lexsort's passes of stable sorts."""
    size = len(a)
    order = np.arange(size)
    spare = np.empty(size, dtype=np.int64)
    width = 1
    while width < size:
        for lo in range(0, size, 2 * width):
            mid = min(lo + width, size)
            hi = min(lo + 2 * width, size)
            i, j, out = lo, mid, lo
            while i < mid and j < hi:
                if _before(a, b, c, order[j], order[i]):
                    spare[out] = order[j]
                    j += 1
                else:
                    spare[out] = order[i]
                    i += 1
                out += 1
            while i < mid:
                spare[out] = order[i]
                i += 1
                out += 1
            while j < hi:
                spare[out] = order[j]
                j += 1
                out += 1
        order, spare = spare, order
        width *= 2
    return order


@compiled
def pareto_ranks(values: Any) -> Any:
    """Front index of every point of a two-objective, NaN-free set (see search.pareto_ranks)."""
    n_pts = values.shape[0]
    order = _lex_order(values[:, 0], values[:, 1], np.zeros(n_pts))
    tails1 = np.empty(n_pts)
    tails0 = np.empty(n_pts)
    n_tails = 0
    ranks = np.empty(n_pts, dtype=np.int64)
    for i in range(n_pts):
        p = order[i]
        k1 = values[p, 1]
        k0 = values[p, 0]
        lo = 0
        hi = n_tails
        while lo < hi:  # first tail not below the key (tuples compared as (f2, f1))
            mid = (lo + hi) // 2
            if tails1[mid] < k1 or (tails1[mid] == k1 and tails0[mid] < k0):
                lo = mid + 1
            else:
                hi = mid
        tails1[lo] = k1
        tails0[lo] = k0
        if lo == n_tails:
            n_tails += 1
        ranks[p] = lo
    return ranks


@compiled
def front_crowding(values: Any, ranks: Any) -> Any:
    """Crowding distance of every point of a two-objective set in its front; repeats after the
    first get 0 (see search.front_crowding)."""
    n_pts = values.shape[0]
    rank_keys = ranks.astype(np.float64)
    order = _lex_order(rank_keys, values[:, 0], values[:, 1])
    dup = np.zeros(n_pts, dtype=np.bool_)
    for i in range(1, n_pts):
        a, b = order[i - 1], order[i]
        dup[b] = (
            ranks[a] == ranks[b] and values[a, 0] == values[b, 0] and values[a, 1] == values[b, 1]
        )
    uniq = np.flatnonzero(~dup)
    n_u = len(uniq)
    u_rank = rank_keys[uniq]
    unused = np.zeros(n_u)
    total = np.zeros(n_u)
    for m in range(2):
        col_all = values[uniq, m]
        srt = _lex_order(u_rank, col_all, unused)
        first = 0
        while first < n_u:
            last = first
            while last + 1 < n_u and u_rank[srt[last + 1]] == u_rank[srt[first]]:
                last += 1
            span = col_all[srt[last]] - col_all[srt[first]]
            if span == 0:
                span = np.nan
            for i in range(first, last + 1):
                col = col_all[srt[i]]
                prev = -np.inf if i == first else col_all[srt[i - 1]]
                nxt = np.inf if i == last else col_all[srt[i + 1]]
                to_prev = (col - prev) / span
                to_next = (nxt - col) / span
                if np.isnan(to_prev):
                    to_prev = 0.0
                if np.isnan(to_next):
                    to_next = 0.0
                total[srt[i]] += to_prev + to_next
            first = last + 1
    sizes = np.bincount(ranks)
    out = np.zeros(n_pts)
    for i in range(n_u):
        out[uniq[i]] = total[i] / 2
    for p in range(n_pts):
        if sizes[ranks[p]] <= 2:
            out[p] = np.inf
    return out


@compiled
def fronts(values: Any, size: int) -> tuple[Any, Any, Any, Any]:
    """`search.survivors` up to its last front: (ranks, crowding, the points of the fronts that
    fit whole, front by front in index order, the points of the next front in index order)."""
    ranks = pareto_ranks(values)
    crowd = front_crowding(values, ranks)
    counts = np.bincount(ranks)
    cut = 0
    filled = counts[0]
    while filled < size:
        cut += 1
        filled += counts[cut]
    start = np.zeros(cut + 1, dtype=np.int64)
    for r in range(1, cut + 1):
        start[r] = start[r - 1] + counts[r - 1]
    keep = np.empty(start[cut], dtype=np.int64)
    last = np.empty(counts[cut], dtype=np.int64)
    n_last = 0
    for p in range(len(ranks)):
        r = ranks[p]
        if r < cut:
            keep[start[r]] = p
            start[r] += 1
        elif r == cut:
            last[n_last] = p
            n_last += 1
    return ranks, crowd, keep, last
