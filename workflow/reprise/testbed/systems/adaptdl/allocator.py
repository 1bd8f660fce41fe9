"""Pollux's policy on our controller: each round's replica allocation of the running AdaptDL jobs,
searched with the shared scheduling core (reprise.policies.pollux: the goodput model and the
NSGA-II over replica matrices) from the hints the jobs report, not from a simulator's ground truth.

What the core's simulated run takes from its measured applications, this takes from each job's
latest AdaptDL hints, as AdaptDL's own allocator does on Kubernetes: the fitted step-time
parameters and gradient statistics make the goodput model, maxProfiledReplicas caps a job at twice
the replicas it has been profiled on, and a job without hints yet is modelled as scaling
linearly and capped at one replica (AdaptDL's initial allocation). A new job gets one replica on
the first node with a free slot at once (AdaptDL's `allocate_job`); the search re-allocates
everyone at the next round.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from reprise.errors import ConfigError
from reprise.policies.pollux.fused import run_fused
from reprise.policies.pollux.goodput import IntArray, best_goodput_one

# the core's speed-up source of one search round; its inputs are filled from hints here
from reprise.policies.pollux.policy import RoundSpeedups
from reprise.policies.pollux.search import (
    RESTART_DELAY,
    AllocationProblem,
    IntState,
    SpeedupTable,
    carry_over,
)
from reprise.testbed.systems.adaptdl.supervisor import JobHints

MAX_REPLICAS_CAP = 64
"""AdaptDL's allocator never gives a job more replicas than this."""
NO_GRADIENT = (0.0, 1.0)
"""AdaptDL's allocator's (norm, var) for a job whose hints carry no gradient statistics yet."""


@dataclass
class PolicyJob:
    """What the policy knows of one job: its name, when it arrived, its hints, where it runs."""

    name: str
    submitted: float
    """Seconds on the controller's clock."""
    alloc: IntState
    """Replicas per node now (all nodes; zeros where none)."""
    hints: JobHints | None = None
    restarts: int = 0
    attained: float = 0.0
    """Replica-seconds held so far (the search orders jobs by it, least first)."""
    initial_local_bsz: tuple[int, int] = (1, 1)
    """Local batch bounds before the first hints (the job's own settings)."""

    @property
    def replicas(self) -> int:
        return int(self.alloc.sum())


def max_replicas(hints: JobHints | None) -> int:
    """AdaptDL's cap: twice the replicas profiled so far, at least one, and no more replicas than
    the largest batch fills with the smallest local batch."""
    if hints is None:
        return 1
    cap = min(max(2 * hints.max_profiled_replicas, 1), MAX_REPLICAS_CAP)
    if hints.local_bsz_bounds is not None and hints.local_bsz_bounds[0] > 0:
        cap = min(cap, max(hints.max_batch_size // hints.local_bsz_bounds[0], 1))
    return cap


class _HintSpeedups(RoundSpeedups):
    """Speed-up of (job, nodes, replicas) as the core's search defines it (its `__call__`): the
    job's modelled goodput over its goodput at the fair share, linear in replicas for a job
    without hints; the model's inputs come from the hints instead of the simulated job."""

    def __init__(self, jobs: Sequence[PolicyJob], fair_nodes: float, fair_replicas: float) -> None:
        hints = [j.hints for j in jobs]
        bounds = [_bounds(j) for j in jobs]
        self.fair_replicas = fair_replicas
        self.modelled = np.array([h is not None for h in hints])
        self.params = np.array([h.perf if h else (1.0,) * 7 for h in hints], dtype=np.float64)
        self.grad = np.array([_grad(h) for h in hints], dtype=np.float64)
        self.init = np.array([h.init_batch_size if h else 1 for h in hints], dtype=np.float64)
        self.max_batch = np.array([_max_batch(h) for h in hints], dtype=np.float64)
        self.min_atomic = np.array([b[0] for b in bounds], dtype=np.float64)
        self.max_atomic = np.array([b[1] for b in bounds], dtype=np.float64)
        self.base = np.ones(len(hints), dtype=np.float64)
        for i, h in enumerate(hints):
            if h is not None:
                self.base[i], _, _ = best_goodput_one(
                    h.perf, _grad(h), h.init_batch_size, _max_batch(h), bounds[i],
                    fair_nodes, fair_replicas,
                )  # fmt: skip


def _grad(hints: JobHints | None) -> tuple[float, float]:
    if hints is None or hints.grad_sqr is None or hints.grad_var is None:
        return NO_GRADIENT
    return (hints.grad_sqr, hints.grad_var)


def _max_batch(hints: JobHints | None) -> int:
    if hints is None:
        return 1
    return max(hints.max_batch_size or hints.init_batch_size, hints.init_batch_size)


def _bounds(job: PolicyJob) -> tuple[int, int]:
    hints = job.hints
    if hints is not None and hints.local_bsz_bounds is not None:
        return hints.local_bsz_bounds
    return job.initial_local_bsz


class PolluxAllocator:
    """The rounds of one run on a cluster of `capacity[i]` replica slots per node."""

    def __init__(self, capacity: Sequence[int], seed: int) -> None:
        if not capacity or min(capacity) < 0 or sum(capacity) == 0:
            raise ConfigError(f"the cluster needs replica slots, has {list(capacity)}")
        self.capacity = np.array(capacity, dtype=np.int64)
        self.rng = np.random.default_rng(seed)
        self.prev_front: IntState | None = None
        self.prev_keys: list[str] = []
        self.searches = 0

    @property
    def num_nodes(self) -> int:
        return len(self.capacity)

    def empty(self) -> IntState:
        return np.zeros(self.num_nodes, dtype=np.int8)

    def free_slots(self, jobs: Sequence[PolicyJob]) -> IntArray:
        used = np.zeros(self.num_nodes, dtype=np.int64)
        for job in jobs:
            used += job.alloc
        return np.asarray(self.capacity - used, dtype=np.int64)

    def initial(self, job: PolicyJob, others: Sequence[PolicyJob]) -> IntState:
        """A new job's allocation until the next round: one replica on the first node with a
        free slot, or none when the cluster is full."""
        alloc = self.empty()
        free = np.flatnonzero(self.free_slots(others) > 0)
        if len(free):
            alloc[free[0]] = 1
        return alloc

    def allocate(self, jobs: Sequence[PolicyJob], now: float) -> dict[str, IntState]:
        """One round: every present job's replicas per node (the search's best on the fairness
        objective, as the core picks it)."""
        if not jobs:
            return {}
        order = sorted(jobs, key=lambda j: (j.attained, j.submitted, j.name))
        base = np.stack([j.alloc for j in order], axis=1).astype(np.int8)
        total = int(self.capacity.sum())
        fair_replicas = float(math.ceil(total / len(order)))
        fair_nodes = float(math.ceil(self.num_nodes / total))
        width = min(MAX_REPLICAS_CAP, total) + 1
        planes = np.full((len(order), self.num_nodes + 1, width), np.nan)
        planes[:, 0, 0] = 0.0
        table = SpeedupTable(planes, _HintSpeedups(order, fair_nodes, fair_replicas))
        ages = np.array([max(now - j.submitted, 0.0) for j in order], dtype=np.float64)
        restarts = np.array([j.restarts for j in order], dtype=np.float64)
        factor = np.maximum(ages - restarts * RESTART_DELAY, 0.0) / (ages + RESTART_DELAY)
        caps = np.array([max_replicas(j.hints) for j in order], dtype=np.int64)
        problem = AllocationProblem(base, caps, self.capacity, table, factor)
        keys = [j.name for j in order]
        initial = carry_over(self.prev_front, self.prev_keys, keys, base)
        result = run_fused(problem, initial, self.rng)
        self.prev_front, self.prev_keys = result.front, keys
        self.searches += 1
        chosen = result.front[:, :, result.best]
        return {job.name: chosen[:, i].copy() for i, job in enumerate(order)}


def count_resizes(changes: Sequence[Mapping[str, object]]) -> dict[str, int]:
    """Pollux's re-allocations of a run by kind, from rows with `reason`, `replicas_before` and
    `replicas_after` (a testbed's allocations.csv or a simulated run's): `up` and `down` change
    a running job's replica count, `moved` keeps it on other nodes, `preempted` takes every
    replica, `started` gives a waiting job its first ones."""
    counts = dict.fromkeys(("up", "down", "moved", "preempted", "started"), 0)
    for change in changes:
        if change["reason"] != "pollux":
            continue
        before, after = int(str(change["replicas_before"])), int(str(change["replicas_after"]))
        if after > before > 0:
            counts["up"] += 1
        elif 0 < after < before:
            counts["down"] += 1
        elif after == before:
            counts["moved"] += 1
        elif after == 0:
            counts["preempted"] += 1
        else:
            counts["started"] += 1
    return counts
