"""Gandiva's placement: node sets per job size, over-subscribed by time-slicing
(docs/policies/gandiva.md#placement).

Every list operation mirrors the upstream cluster model, because the order of sets inside a size
class decides which job shares which nodes, and thereby which job runs in a given round.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from operator import attrgetter

from reprise.data.clusters import ClusterSpec
from reprise.data.traces import TraceJob
from reprise.errors import SimulationError

CLASS_SIZES: tuple[int, ...] = (1, 2, 4, 8, 12, 16, 24, 32, 40, 48, 56, 64, 72, 88, 128, 256)
"""Job sizes that own a list of node sets, in the order upstream walks them."""

ROTATION_PERIOD = 60
"""Seconds; time-sliced sets swap their running prefix only when `now` is a multiple of this."""


@dataclass(slots=True, eq=False)
class SlicedJob:
    """Run-time state of one job under Gandiva; identity equality (lists remove by identity)."""

    job: TraceJob
    executed: float = 0.0
    """Seconds of progress against the trace `duration`."""
    overhead: float = 0.0
    """Seconds lost at the start of the next interval this job runs in."""
    start_time: int | None = None
    end_time: float | None = None
    in_slot: bool = False
    """Among the first `capacity` jobs of its set at the last bookkeeping pass (holds GPUs)."""
    waited: bool = False
    """Found no node set on arrival (upstream's "runnable" list holds it from then on)."""
    speedup: float | None = None
    """tput(num_gpu) / tput(1), looked up at the job's first round sample in its slot."""

    @property
    def num_gpu(self) -> int:
        return self.job.num_gpu


@dataclass(slots=True, eq=False)
class NodeSet:
    """Whole nodes reserved for jobs of one size; `capacity` jobs run at once, the rest wait."""

    size: int
    nodes: list[int]
    capacity: int
    load: int
    """Upstream `util`: jobs added since the set's last reshuffle; completions never lower it."""
    jobs: list[SlicedJob] = field(default_factory=list)


_by_load = attrgetter("load")


class GandivaPlacement:
    """Free nodes plus, per size class, an ordered list of node sets."""

    def __init__(self, cluster: ClusterSpec) -> None:
        self.gpus_per_node = cluster.gpus_per_node
        self.num_gpus = cluster.num_gpus
        self.num_nodes = cluster.num_nodes
        self.free_nodes: list[int] = list(range(cluster.num_nodes))
        self.sets: dict[int, list[NodeSet]] = {size: [] for size in CLASS_SIZES}

    # -- helpers -------------------------------------------------------------------------------

    def _nodes_for(self, size: int) -> int:
        return math.ceil(size / self.gpus_per_node)

    def _open_set(self, size: int, load: int) -> NodeSet:
        count = self._nodes_for(size)
        nodes = self.free_nodes[:count]
        del self.free_nodes[:count]
        return NodeSet(size, nodes, (count * self.gpus_per_node) // size, load)

    def _class_list(self, size: int) -> list[NodeSet]:
        try:
            return self.sets[size]
        except KeyError:
            raise SimulationError(
                f"Gandiva placement has no node-set class for a {size}-GPU job "
                f"(classes: {', '.join(map(str, CLASS_SIZES))}); upstream aborts here"
            ) from None

    @staticmethod
    def _append_to_least_loaded(sets: list[NodeSet], moved: list[SlicedJob]) -> None:
        """Hand jobs one by one to the head of the list, re-sorting by load after each."""
        for sliced in moved:
            head = sets[0]
            head.load += 1
            head.jobs.append(sliced)
            sets.sort(key=_by_load)

    # -- placement -----------------------------------------------------------------------------

    def place(self, sliced: SlicedJob) -> bool:
        """Put a job into a node set; False when it has to wait (no set of its size, no nodes)."""
        size = sliced.num_gpu
        sets = self._class_list(size)
        if sets:
            head = sets.pop(0)
            # quirk: strict `<`, so a set never fills its last slot this way
            # (docs/policies/gandiva.md#placement)
            if head.load + 1 < head.capacity:
                head.load += 1
                head.jobs.append(sliced)
                sets.append(head)
                sets.sort(key=_by_load)
                return True
            sets.append(head)  # quirk: rotated to the back without re-sorting
        if self._nodes_for(size) <= len(self.free_nodes):
            fresh = self._open_set(size, load=1)
            fresh.jobs.append(sliced)
            sets.append(fresh)
            sets.sort(key=_by_load)
            return True
        if sets:
            # over-subscription: the job joins the set now at the head, time-sliced
            head = sets.pop(0)
            head.load += 1
            head.jobs.append(sliced)
            sets.append(head)
            sets.sort(key=_by_load)
            return True
        return False

    # -- per-round rebalancing (upstream gandiva_node_set_adjust) ------------------------------

    def rebalance(self) -> None:
        """Give every size class a share of the cluster proportional to its GPU demand."""
        demand: dict[int, int] = {}
        held: dict[int, int] = {}
        total = 0
        for size, sets in self.sets.items():
            if not sets:
                continue
            jobs = nodes = 0
            for node_set in sets:
                jobs += len(node_set.jobs)
                nodes += len(node_set.nodes)
            demand[size] = jobs * size
            held[size] = nodes * self.gpus_per_node
            total += jobs * size
        if total == 0:
            return
        for size, want in demand.items():
            if want == 0:
                continue
            sets = self.sets[size]
            share = math.floor((want / total) * self.num_gpus)
            diff = min(share, want) - held[size]
            if diff > 0:
                self._expand(size, sets, math.ceil(diff / size))
            elif diff < 0:
                self._shrink(sets, math.ceil(-diff / size))

    def _expand(self, size: int, sets: list[NodeSet], count: int) -> None:
        needed = self._nodes_for(size)
        # quirk: upstream reuses its loop counter for the node loop, so the reshuffle below is
        # skipped when the last new set was opened and it spans a single node
        counter = 0
        for attempt in range(1, count + 1):
            counter = attempt
            if needed <= len(self.free_nodes):
                sets.append(self._open_set(size, load=0))
                counter = needed - 1
        if counter > 0:
            moved: list[SlicedJob] = []
            for node_set in sets:
                if node_set.jobs:
                    moved.extend(node_set.jobs)
                    node_set.jobs = []
                    node_set.load = 0
            self._append_to_least_loaded(sets, moved)

    def _shrink(self, sets: list[NodeSet], count: int) -> None:
        count = min(count, len(sets) - 1)  # never dissolve the last set
        if count <= 0:
            return
        moved: list[SlicedJob] = []
        for _ in range(count):
            gone = sets.pop(0)
            moved.extend(gone.jobs)
            self.free_nodes.extend(gone.nodes)  # quirk: appended, not re-sorted
        self._append_to_least_loaded(sets, moved)

    # -- execution (upstream time_slicing_execute) ---------------------------------------------

    def time_slice(self, now: int, elapsed: int) -> tuple[list[SlicedJob], bool]:
        """Credit `elapsed` seconds to each set's running prefix, rotate, retire finished jobs.

        Returns the finished jobs (end_time back-dated to the exact second) and whether any set
        became empty and gave its nodes back.
        """
        rotate = now % ROTATION_PERIOD == 0
        finished: list[SlicedJob] = []
        released = False
        for sets in self.sets.values():
            if not sets:
                continue
            emptied: list[NodeSet] = []
            for node_set in sets:
                jobs = node_set.jobs
                running = min(len(jobs), node_set.capacity)
                done: list[SlicedJob] = []
                for sliced in jobs[: max(running, 1)]:
                    if sliced.overhead:
                        sliced.executed += max(elapsed - sliced.overhead, 0)
                        sliced.overhead = 0.0
                    else:
                        sliced.executed += elapsed
                    duration = sliced.job.duration
                    if sliced.executed >= duration:
                        sliced.end_time = now - (sliced.executed - duration)
                        done.append(sliced)
                if rotate and len(jobs) > running:
                    node_set.jobs = jobs[running:] + jobs[:running]
                if done:
                    for sliced in done:
                        node_set.jobs.remove(sliced)
                    finished.extend(done)
                if not node_set.jobs:
                    self.free_nodes.extend(node_set.nodes)
                    emptied.append(node_set)
                    released = True
            for node_set in emptied:
                sets.remove(node_set)
        return finished, released

    # -- bookkeeping and logging ---------------------------------------------------------------

    def mark_slots(self) -> int:
        """Flag the jobs holding GPUs this round (the first `capacity` of every set).

        Returns the GPUs in use, i.e. the non-empty cells of `gpu_map()`.
        """
        gpn = self.gpus_per_node
        used = 0
        for size, sets in self.sets.items():
            for node_set in sets:
                jobs = node_set.jobs
                if not jobs:
                    continue
                cap = node_set.capacity
                for pos, sliced in enumerate(jobs):
                    sliced.in_slot = pos < cap
                if size >= gpn:
                    used += len(node_set.nodes) * gpn
                else:
                    used += size * min(cap, len(jobs))
        return used

    def gpu_map(self) -> tuple[int | None, ...]:
        """Job index per GPU, nodes in id order, like the upstream `scheduling_events.csv`."""
        gpn = self.gpus_per_node
        cells: list[int | None] = [None] * (self.num_nodes * gpn)
        for size, sets in self.sets.items():
            for node_set in sets:
                if not node_set.jobs:
                    continue
                if size >= gpn:
                    owner = node_set.jobs[0].job.idx
                    for node in node_set.nodes:
                        cells[node * gpn : (node + 1) * gpn] = [owner] * gpn
                    continue
                pos = node_set.nodes[0] * gpn
                for sliced in node_set.jobs:
                    if not sliced.in_slot:
                        continue
                    cells[pos : pos + size] = [sliced.job.idx] * size
                    pos += size
        return tuple(cells)
