"""The data-aware scheduler's decisions (no Ray here): pick each task's node by estimated
finish time, with per-node speeds learned online from finished tasks."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass
class NodeModel:
    """What the scheduler knows of one worker node."""

    node_id: str
    role: str
    needs_transfer: bool
    link_bytes_per_s: float
    # learned online: sums over finished work on this node
    compute_s: float = 0.0
    compute_bytes: int = 0
    transfer_s: float = 0.0
    transfer_bytes: int = 0
    # committed work, as estimates of when the node's transfer and compute queues drain
    transfer_free: float = 0.0
    compute_free: float = 0.0
    in_flight: set[str] = field(default_factory=set)

    def seconds_per_byte(self, fallback: float) -> float:
        return self.compute_s / self.compute_bytes if self.compute_bytes else fallback

    def bandwidth(self) -> float:
        if self.transfer_bytes and self.transfer_s > 0:
            return self.transfer_bytes / self.transfer_s
        return self.link_bytes_per_s


class DataAwarePlanner:
    """Estimated-finish-time placement with one transfer per node at a time.

    A task goes to the node where it would finish first: after the node's queued transfers
    and its own copy (if the node does not hold the data), and after the node's queued
    compute, plus its compute time at the node's learned speed. Until a node has finished a
    task its speed is the mean of the nodes that have (equal speeds before any finished).
    A node holds at most `depth` tasks, so later choices use what was learned meanwhile.
    """

    def __init__(self, nodes: Sequence[NodeModel], depth: int = 2) -> None:
        if not nodes:
            raise ValueError("the data-aware scheduler needs at least one worker node")
        self.nodes = {n.node_id: n for n in nodes}
        self.depth = depth

    def _fallback_speed(self) -> float:
        known = [n.compute_s / n.compute_bytes for n in self.nodes.values() if n.compute_bytes]
        return sum(known) / len(known) if known else 1e-6

    def finish_estimate(self, node: NodeModel, size: int, now: float) -> float:
        ready = max(now, node.compute_free)
        if node.needs_transfer:
            copied = max(now, node.transfer_free) + size / node.bandwidth()
            ready = max(ready, copied)
        return ready + size * node.seconds_per_byte(self._fallback_speed())

    def choose(self, task: str, size: int, now: float) -> str | None:
        """The node for `task`, or None: its best node is full, so wait for a task to end."""
        estimates = {nid: self.finish_estimate(n, size, now) for nid, n in self.nodes.items()}
        best = min(estimates, key=lambda nid: (estimates[nid], nid))
        node = self.nodes[best]
        if len(node.in_flight) >= self.depth:
            return None
        node.in_flight.add(task)
        if node.needs_transfer:
            node.transfer_free = max(now, node.transfer_free) + size / node.bandwidth()
        node.compute_free = estimates[best]
        return best

    def transferred(self, node_id: str, size: int, seconds: float) -> None:
        node = self.nodes[node_id]
        if size > 0 and seconds > 0:
            node.transfer_s += seconds
            node.transfer_bytes += size

    def finished(self, node_id: str, task: str, size: int, compute_s: float, now: float) -> None:
        node = self.nodes[node_id]
        node.in_flight.discard(task)
        node.compute_s += compute_s
        node.compute_bytes += size
        if not node.in_flight:
            node.compute_free = now
            node.transfer_free = min(node.transfer_free, now)
