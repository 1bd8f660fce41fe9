"""The testbed executor: carries a policy's rounds out on the elastic runtime and returns the
restart seconds it measured, in the shape of the engine's executor seam (reprise.sim.engine's
`Executor` and its round hook, satisfied structurally: the testbed does not import the simulator).

With the round hook (`observe_round`), every round's GPU map says which jobs hold how many GPUs,
whether the policy charges them or not: jobs are placed, re-placed and stopped from it, and the
policy's charge (`apply`) is answered from what that round measured. Without it, the jobs handed
to `apply` are the whole allocation. A job keeps its slots while its GPU count is unchanged (it
pays nothing, as upstream's running jobs do); a job whose count changed, a new or resumed one,
one whose node was lost (`on_node_loss: replace`) and, on a restart round, every charged job is
stopped at one iteration and started on its slots; a job given no GPUs is stopped with its state
saved. A job whose trainer died restarts from its checkpoint in the next round
(`on_trainer_failure: restart`) and that restart is measured like any other.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from reprise.errors import TestbedError
from reprise.testbed.runtime.client import ElasticRuntime, JobSpec, Placement


class Allocation(Protocol):
    """What the executor reads of the engine's AllocationChange."""

    @property
    def job(self) -> int: ...

    @property
    def gpus(self) -> int: ...


class Round(Protocol):
    """What the executor reads of the engine's RoundSample."""

    @property
    def time(self) -> float: ...

    @property
    def gpu_map(self) -> tuple[int | None, ...] | None: ...


@dataclass
class Step:
    """What one job went through in one round on the testbed (a row of restarts.csv)."""

    time: float
    job: int
    name: str
    action: str
    """start, resume, scale, migration, move, recovery, relaunch (restart round), stop, lost."""
    gpus_from: int
    gpus_to: int
    slots: str
    measured_s: float | None
    runtime_charged_s: float
    """What the runtime charged: floor of the seconds to stable, at most the cap; the whole
    slot for a job not stable within it."""
    policy_charged: bool = False
    """Whether the policy asked what the job paid this round (its rule decides who pays)."""
    stable: bool = True
    warning: str = ""


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
                "cluster spec must not have more GPUs than the inventory's slots (a lost node's "
                "slots are gone)"
            )
        placed[job] = Placement(tuple(slots))
    return placed


class TestbedExecutor:
    """Applies the engine's allocations to real trainers; `spec_of` says what job i trains."""

    __test__ = False  # not a pytest test class, despite the name
    measured = True
    """Every policy pays what this executor measured (docs/engine.md#overheads)."""

    def __init__(
        self,
        runtime: ElasticRuntime,
        spec_of: Callable[[int], JobSpec],
        after_round: Callable[[TestbedExecutor], None] | None = None,
    ) -> None:
        self.runtime = runtime
        self.spec_of = spec_of
        self.after_round = after_round
        """Called after each observed round is carried out (tests inject faults there)."""
        self.placed: dict[int, Placement] = {}
        self.names: dict[int, str] = {}
        self.steps: list[Step] = []
        self.observed: float | None = None
        """The time of the last round seen through the hook."""
        self.paid: dict[int, float] = {}
        """What each job re-placed in the observed round was charged by the runtime."""
        self.relaunched: set[int] = set()

    def _name(self, job: int) -> str:
        if job not in self.names:
            spec = self.spec_of(job)
            self.runtime.add_job(spec)
            self.names[job] = spec.job
        return self.names[job]

    # ---- the engine's seam --------------------------------------------------------------------
    def observe_round(self, sample: Round) -> None:
        """Place the round's jobs as its GPU map says (the policy runs with record_gpu_map)."""
        if sample.gpu_map is None:
            raise TestbedError(
                "the testbed executor needs each round's GPU map: run the policy with "
                "SimOptions(record_gpu_map=True)"
            )
        want = Counter(j for j in sample.gpu_map if j is not None)
        self.observed = sample.time
        self.paid = self._reconcile(sample.time, dict(want))
        self.relaunched = set()
        if self.after_round is not None:
            self.after_round(self)

    def apply(self, now: float, changes: Sequence[Allocation], restart: bool) -> dict[int, float]:
        if self.observed != now:
            # no round hook: the jobs handed over are the whole allocation
            self.paid = self._reconcile(now, {c.job: c.gpus for c in changes if c.gpus > 0})
            self.observed = now
            self.relaunched = set()
        if restart:
            again = [c.job for c in changes if c.job in self.placed and c.job not in self.paid]
            again = [j for j in again if j not in self.relaunched]
            if again:
                self.paid.update(self._relaunch(now, again))
                self.relaunched.update(again)
        for step in self.steps:
            if step.time == now and step.job in {c.job for c in changes}:
                step.policy_charged = True
        return {c.job: self.paid.get(c.job, 0.0) for c in changes}

    # ---- carrying a round out -----------------------------------------------------------------
    def _reconcile(self, now: float, want: Mapping[int, int]) -> dict[int, float]:
        """Stop, start and re-place jobs so the testbed holds `want` (job -> slots); returns
        the runtime's charge of every job it (re)started."""
        rt = self.runtime
        lost = rt.lost()
        if lost and rt.settings.on_node_loss == "stop":
            rt.apply({})  # raises NodeLost, naming the node, if it held a job
        displaced = set(rt.displaced())
        gone = [j for j in self.placed if j not in want]
        moving = {
            j: g
            for j, g in want.items()
            if j not in self.placed
            or self.placed[j].world_size != g
            or self.names.get(j) in displaced
        }
        kept = {j: p for j, p in self.placed.items() if j in want and j not in moving}
        taken = {slot for p in kept.values() for slot in p.slots}
        free = {
            name: [s for s in range(a.node.slots) if (name, s) not in taken]
            for name, a in rt.agents.items()
            if name not in lost
        }
        new = pack(moving, free)
        orders: dict[str, Placement | None] = {self._name(j): None for j in gone}
        orders.update({self._name(j): p for j, p in new.items()})
        if not orders and not rt.failed() and not lost:
            return {}  # nothing to do (a lost node is checked by the runtime's apply)
        before = len(rt.restarts)
        charged = rt.apply(orders)
        for j in gone:
            old = self.placed.pop(j)
            self.steps.append(Step(now, j, self.names[j], "stop", old.world_size, 0, "", None, 0.0))
        self.placed.update(new)
        return self._logged(now, before, charged)

    def _relaunch(self, now: float, jobs: Sequence[int]) -> dict[int, float]:
        """A restart round: the jobs stop at one iteration and start again on their slots."""
        rt = self.runtime
        before = len(rt.restarts)
        charged = rt.apply({self.names[j]: self.placed[j] for j in jobs})
        return self._logged(now, before, charged, "relaunch")

    def _logged(
        self, now: float, before: int, charged: Mapping[str, float], action: str = ""
    ) -> dict[int, float]:
        """Steps for the runtime's restarts since `before`; the charge by job index."""
        by_name = {n: j for j, n in self.names.items()}
        for record in self.runtime.restarts[before:]:
            self.steps.append(
                Step(
                    now,
                    by_name[record.job],
                    record.job,
                    action or record.kind,
                    record.world_from,
                    record.world_to,
                    record.slots_to,
                    record.measured_s,
                    record.charged_s,
                    stable=record.stable,
                    warning=record.warning,
                )
            )
        return {by_name[n]: s for n, s in charged.items()}

    def stop_all(self) -> None:
        """Stop every job this executor placed (the policy's run is over)."""
        if self.placed:
            self.runtime.apply({self.names[j]: None for j in self.placed})
            self.placed.clear()
