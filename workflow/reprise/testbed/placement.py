"""Where the ranks of one testbed job go: node slots taken in a fixed, documented order."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from reprise.errors import TestbedError
from reprise.testbed.nodes import Node


@dataclass(frozen=True)
class Rank:
    rank: int
    local_rank: int
    node: Node


def place_ranks(nodes: Sequence[Node], world: int, mode: str = "pack") -> list[Rank]:
    """`pack` fills a node's slots before the next (ElasticFlow's consolidated placement on GPU
    servers); `spread` deals ranks round-robin over nodes with a free slot (one rank per CPU node
    for as long as there are nodes)."""
    capacity = sum(n.slots for n in nodes)
    if world < 1:
        raise TestbedError(f"a job needs at least one worker, not {world}")
    if world > capacity:
        names = ", ".join(f"{n.name} ({n.slots})" for n in nodes)
        raise TestbedError(
            f"{world} workers do not fit the cluster's {capacity} slots ({names}); "
            "lower the worker counts or add slots/nodes in the cluster inventory"
        )
    order: list[Node] = []
    if mode == "pack":
        for node in nodes:
            order.extend([node] * node.slots)
    elif mode == "spread":
        left = {n.name: n.slots for n in nodes}
        while len(order) < capacity:
            for node in nodes:
                if left[node.name] > 0:
                    order.append(node)
                    left[node.name] -= 1
    else:
        raise TestbedError(f"unknown placement {mode!r}; use 'pack' or 'spread'")
    ranks: list[Rank] = []
    seen: dict[str, int] = {}
    for rank, node in enumerate(order[:world]):
        local = seen.get(node.name, 0)
        seen[node.name] = local + 1
        ranks.append(Rank(rank=rank, local_rank=local, node=node))
    # rank 0 hosts the rendezvous; keep ranks grouped by node so local ranks are contiguous
    return ranks
