"""The `elastic` placement scheme: whole nodes grouped into node sets by size class.

See docs/engine.md#placement. Placement only decides GPU identities (the per-GPU map of
`scheduling_events.csv`, docs/engine.md#rounds) and the "cached" flag of the overhead model
(docs/engine.md#overheads); throughput never depends on it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from operator import attrgetter

from reprise.data.clusters import ClusterSpec
from reprise.errors import SimulationError

NODE_SET_CLASSES: tuple[int, ...] = (1, 2, 4, 8, 12, 16, 24, 32, 40, 48, 56, 64, 72, 88, 128, 256)
"""Job sizes the scheme knows; any other GPU count aborts upstream (docs/engine.md#placement)."""

_CLASSES_DESCENDING = tuple(sorted(NODE_SET_CLASSES, reverse=True))


_DIVIDING_CLASS: dict[int, int] = {}


def _largest_dividing_class(free: int) -> int:
    """Largest class that divides `free` (free > 0, so class 1 always qualifies)."""
    found = _DIVIDING_CLASS.get(free)
    if found is not None:
        return found
    for k in _CLASSES_DESCENDING:
        if k <= free and free % k == 0:
            _DIVIDING_CLASS[free] = k
            return k
    raise SimulationError(f"no node-set class divides {free} free GPUs")


@dataclass(slots=True, eq=False)
class _NodeSet:
    """Whole nodes shared by the jobs placed on them (compared by identity)."""

    nodes: list[int]
    """Global node indices (switch-major), in the order they were taken from the free list."""
    capacity: int
    util: int
    label: int
    """The set's own class field; quirk: it can disagree with the list the set sits in (see
    `ElasticPlacement.release`)."""
    jobs: list[int] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Layout:
    """The per-GPU picture of one round, as upstream's round log lays it out.

    `gpu_map[p]` is the job index using GPU position p (switch, node, GPU order: the column order
    of `scheduling_events.csv`), or None. `ranges` lists, in the order the log walks them, the
    (job, first position, GPU count) triples that feed the overhead cache
    (docs/engine.md#overheads); a job can appear more than once (a multi-node set shared by small
    jobs), the last entry decides its flag.
    """

    gpu_map: tuple[int | None, ...]
    ranges: tuple[tuple[int, int, int], ...]


class PlacementCache:
    """GPU ranges seen since the last restart round; a job on a seen range pays only base."""

    def __init__(self, num_gpus: int) -> None:
        self._num_gpus = num_gpus
        self._seen: set[tuple[int, int]] = set()

    def is_cached(self, start: int, length: int) -> bool:
        """True if (start, length) was seen before; otherwise record it and return False."""
        if start < 0 or start + length > self._num_gpus:
            # quirk: upstream encodes the range as a bit string of N chars and would crash here
            raise SimulationError(
                f"GPU range [{start}, {start + length}) is outside the {self._num_gpus}-GPU cluster"
            )
        key = (start, length)
        if key in self._seen:
            return True
        self._seen.add(key)
        return False

    def clear(self) -> None:
        """Forget every range (upstream does this on restart rounds)."""
        self._seen.clear()

    def __len__(self) -> int:
        return len(self._seen)


def cache_flags(layout: Layout, cache: PlacementCache) -> dict[int, bool]:
    """Run the cache over a round's ranges in log order: job idx -> cached flag (last one wins)."""
    flags: dict[int, bool] = {}
    for job, start, length in layout.ranges:
        flags[job] = cache.is_cached(start, length)
    return flags


class ElasticPlacement:
    """Node-set placement (docs/engine.md#placement), with upstream's list orders and quirks.

    Usage per round: `release_all()` (or `release` job by job), then `place(job, gpus)` for each
    job in the policy's order; `layout()` then gives the GPU map and the cache ranges.
    `place` returns False when neither a node set nor enough free nodes can take the job (upstream
    callers assert success, so policies should turn False into a `SimulationError`).
    """

    def __init__(self, cluster: ClusterSpec) -> None:
        self._gpn = cluster.gpus_per_node
        self._nodes_per_switch = cluster.nodes_per_switch
        self._num_nodes = cluster.num_nodes
        self._num_gpus = cluster.num_gpus
        # one list per class, kept in ascending class order: the round log scans them in that order
        self._lists: dict[int, list[_NodeSet]] = {k: [] for k in NODE_SET_CLASSES}
        self._free_nodes: list[int] = list(range(self._num_nodes))
        self._node_ids: list[int] = [n % self._nodes_per_switch for n in range(self._num_nodes)]
        """Per-switch node id of each global node: the free-list sort key."""
        self._set_of: dict[int, _NodeSet] = {}
        self._gpus_of: dict[int, int] = {}

    # ---- queries ---------------------------------------------------------------------------

    @property
    def num_gpus(self) -> int:
        return self._num_gpus

    def is_placed(self, job: int) -> bool:
        return job in self._set_of

    def placed_gpus(self, job: int) -> int:
        """GPUs the job was placed with (0 if it is not placed)."""
        return self._gpus_of.get(job, 0)

    def placed_jobs(self) -> list[int]:
        """Placed jobs in placement order."""
        return list(self._set_of)

    def free_gpus(self) -> int:
        """Unused GPUs of all node sets plus the GPUs of whole free nodes."""
        free = len(self._free_nodes) * self._gpn
        for sets in self._lists.values():
            for s in sets:
                free += s.capacity - s.util
        return free

    def free_nodes(self) -> tuple[int, ...]:
        """Free nodes (global indices) in list order: sorted by per-switch node id on release."""
        return tuple(self._free_nodes)

    # ---- placement -------------------------------------------------------------------------

    def place(self, job: int, gpus: int) -> bool:
        """Put `job` with `gpus` GPUs into a node set; False if nothing can take it."""
        if gpus not in self._lists:
            raise SimulationError(
                f"job {job} needs {gpus} GPUs, which is not a node-set class "
                f"({', '.join(map(str, NODE_SET_CLASSES))}); upstream aborts here"
            )
        if job in self._set_of:
            raise SimulationError(f"job {job} is placed twice without a release")
        own = self._lists[gpus]
        # 1. the least utilised set of the job's own class (one that does not fit goes to the back)
        if own:
            candidate = own.pop(0)
            if candidate.util + gpus <= candidate.capacity:
                self._join(candidate, job, gpus, own)
                return True
            own.append(candidate)
        # 2. only the head set of each larger class, largest class first
        for k in _CLASSES_DESCENDING:
            if k <= gpus:
                break
            larger = self._lists[k]
            if not larger:
                continue
            candidate = larger.pop(0)
            if candidate.util + gpus <= candidate.capacity:
                self._join(candidate, job, gpus, own)
                return True
            larger.append(candidate)
        # 3. a new set of whole nodes from the head of the free list
        need = -(-gpus // self._gpn)
        if need > len(self._free_nodes):
            return False
        nodes = self._free_nodes[:need]
        del self._free_nodes[:need]
        # quirk: the new set's class field stays `gpus` even when it is filed under another class
        new = _NodeSet(nodes=nodes, capacity=need * self._gpn, util=gpus, label=gpus, jobs=[job])
        self._file(new, own)
        self._set_of[job] = new
        self._gpus_of[job] = gpus
        return True

    def _join(self, node_set: _NodeSet, job: int, gpus: int, own: list[_NodeSet]) -> None:
        node_set.util += gpus
        node_set.jobs.append(job)
        if node_set.capacity - node_set.util > 0:
            node_set.label = _largest_dividing_class(node_set.capacity - node_set.util)
        # a full set keeps its class field and joins the list of the job's own size
        self._file(node_set, own)
        self._set_of[job] = node_set
        self._gpus_of[job] = gpus

    def _file(self, node_set: _NodeSet, own: list[_NodeSet]) -> None:
        """Append to the list of the set's free count (own list if full); re-sort by utilisation."""
        free = node_set.capacity - node_set.util
        if free > 0:
            target = self._lists[_largest_dividing_class(free)]
            target.append(node_set)
            own.sort(key=_util)
            target.sort(key=_util)
        else:
            own.append(node_set)
            own.sort(key=_util)

    def release(self, job: int) -> None:
        """Take `job` off its node set; an emptied set gives its nodes back to the free list."""
        node_set = self._set_of.pop(job, None)
        if node_set is None:
            raise SimulationError(
                f"job {job} is released but holds no placement (upstream crashes)"
            )
        gpus = self._gpus_of.pop(job)
        node_set.util -= gpus
        node_set.jobs.remove(job)
        if node_set.util < 0:
            raise SimulationError(f"node set of job {job} has negative utilisation")
        free = node_set.capacity - node_set.util
        if node_set.util == 0:
            self._free_nodes.extend(node_set.nodes)
            for sets in self._lists.values():
                # node sets compare by identity, so `in`/`remove` drop exactly this set
                while node_set in sets:
                    sets.remove(node_set)
            # node ids repeat across switches; the stable sort interleaves switches (as upstream)
            self._free_nodes.sort(key=self._node_ids.__getitem__)
            return
        new_class = _largest_dividing_class(free)
        if free == node_set.label:
            # quirk: compares the free count with the class field, not the list the set is in
            return
        old_list = self._lists[node_set.label]
        for i, s in enumerate(old_list):
            if s is node_set:
                del old_list[i]
                break
        else:
            raise SimulationError(
                f"node set of job {job} is not in the class-{node_set.label} list "
                "(upstream raises ValueError here)"
            )
        node_set.label = new_class
        target = self._lists[new_class]
        target.append(node_set)
        target.sort(key=_util)

    def release_all(self, order: Iterable[int] | None = None) -> None:
        """Release the given jobs in that order (default: every placed job, in placement order).

        The order only matters on multi-switch clusters (ties of the free-node sort).
        """
        for job in list(self._set_of) if order is None else list(order):
            self.release(job)

    # ---- the round log's view --------------------------------------------------------------

    def layout(self) -> Layout:
        """GPU map and cache ranges, walking nodes in switch/node order as the upstream log does."""
        gpn = self._gpn
        free = set(self._free_nodes)
        # node -> (class of the list holding its set, the set); lists scanned in ascending class
        owner: dict[int, tuple[int, _NodeSet]] = {}
        for k, sets in self._lists.items():
            for s in sets:
                for n in s.nodes:
                    owner.setdefault(n, (k, s))
        cells: list[int | None] = []
        ranges: list[tuple[int, int, int]] = []
        whole_node_logged: set[int] = set()
        for node in range(self._num_nodes):
            if node in free:
                cells.extend([None] * gpn)
                continue
            found = owner.get(node)
            if found is None:
                raise SimulationError(f"node {node} is neither free nor in a node set")
            k, s = found
            if k >= gpn:
                # whole-node class: the set's first job is shown on every GPU of the node
                head = s.jobs[0]
                if head not in whole_node_logged:
                    ranges.append((head, len(cells), self._gpus_of[head]))
                    whole_node_logged.add(head)
                cells.extend([head] * gpn)
                continue
            used = 0
            for j in s.jobs:
                g = self._gpus_of[j]
                ranges.append((j, len(cells), g))
                cells.extend([j] * g)
                used += g
            if used > gpn:
                raise SimulationError(
                    f"node {node}: its node set lists {used} GPUs of jobs on a {gpn}-GPU node "
                    "(upstream asserts here)"
                )
            cells.extend([None] * (gpn - used))
        return Layout(gpu_map=tuple(cells), ranges=tuple(ranges))

    def gpu_map(self) -> tuple[int | None, ...]:
        """Job index per GPU position (None = idle), in `scheduling_events.csv` column order."""
        return self.layout().gpu_map


_util = attrgetter("util")
