"""The testbed executor: carries a round's allocations out on the elastic runtime and returns the
restart seconds it measured, in the shape of the engine's executor seam (reprise.sim.engine's
`Executor`, satisfied structurally: the testbed does not import the simulator).

A job keeps its slots while its GPU count is unchanged (it pays nothing, as upstream's running
jobs do); a job whose count changed, or every job on a restart round, is stopped at one
iteration and started on new slots; a job given no GPUs is stopped with its state saved.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from reprise.errors import TestbedError
from reprise.testbed.runtime.client import ElasticRuntime, JobSpec, Placement


class Allocation(Protocol):
    """What the executor reads of the engine's AllocationChange."""

    @property
    def job(self) -> int: ...

    @property
    def gpus(self) -> int: ...


def pack(sizes: dict[int, int], free: dict[str, list[int]]) -> dict[int, Placement]:
    """Slots for each job, largest first: the node whose free slots fit it most tightly, else
    nodes with the most free slots in turn (consolidated, as upstream's placement). `free` is
    node -> free slot indices, in the cluster's node order; it is consumed."""
    placed: dict[int, Placement] = {}
    for job, size in sorted(sizes.items(), key=lambda kv: (-kv[1], kv[0])):
        fitting = [n for n, s in free.items() if len(s) >= size]
        if fitting:
            order = [min(fitting, key=lambda n: len(free[n]))]
        else:
            order = sorted(free, key=lambda n: -len(free[n]))
        slots: list[tuple[str, int]] = []
        for node in order:
            while free[node] and len(slots) < size:
                slots.append((node, free[node].pop(0)))
        if len(slots) < size:
            total = sum(len(s) for s in free.values()) + len(slots)
            raise TestbedError(
                f"job {job} asks for {size} slots but {total} are free on the testbed: its "
                "cluster spec must not have more GPUs than the inventory's slots"
            )
        placed[job] = Placement(tuple(slots))
    return placed


class TestbedExecutor:
    """Applies the engine's allocations to real trainers; `spec_of` says what job i trains."""

    __test__ = False  # not a pytest test class, despite the name

    def __init__(self, runtime: ElasticRuntime, spec_of: Callable[[int], JobSpec]) -> None:
        self.runtime = runtime
        self.spec_of = spec_of
        self.placed: dict[int, Placement] = {}
        self.names: dict[int, str] = {}

    def _name(self, job: int) -> str:
        if job not in self.names:
            spec = self.spec_of(job)
            self.runtime.add_job(spec)
            self.names[job] = spec.job
        return self.names[job]

    def apply(self, now: float, changes: Sequence[Allocation], restart: bool) -> dict[int, float]:
        want = {c.job: c.gpus for c in changes if c.gpus > 0}
        gone = [j for j in self.placed if j not in want]
        moving = {
            j: g
            for j, g in want.items()
            if restart or j not in self.placed or self.placed[j].world_size != g
        }
        kept = {j: p for j, p in self.placed.items() if j in want and j not in moving}
        taken = {slot for p in kept.values() for slot in p.slots}
        free = {
            name: [s for s in range(a.node.slots) if (name, s) not in taken]
            for name, a in self.runtime.agents.items()
        }
        new = pack(moving, free)
        orders: dict[str, Placement | None] = {self._name(j): None for j in gone}
        orders.update({self._name(j): p for j, p in new.items()})
        charged = self.runtime.apply(orders)
        for j in gone:
            del self.placed[j]
        self.placed.update(new)
        return {j: charged.get(self._name(j), 0.0) if j in new else 0.0 for j in want}
