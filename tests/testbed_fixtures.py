"""Session-scoped sshd-in-netns test nodes for the testbed tests (skipped where they cannot run)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from infra.netns_nodes import NetnsCluster, NetnsNode, usable


@pytest.fixture(scope="session")
def netns_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NetnsCluster]:
    """Two nodes (n1 in group "a", n2 in group "b"); tests may add throw-away nodes."""
    reason = usable()
    if reason is not None:
        pytest.skip(reason)
    cluster = NetnsCluster(Path(tmp_path_factory.mktemp("netns"))).start()
    try:
        cluster.add_node("n1")
        cluster.add_node("n2")
        cluster.save()  # after a hard crash: python tests/infra/netns_nodes.py stop --dir <it>
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def throwaway_node(netns_cluster: NetnsCluster) -> Iterator[Callable[[str], NetnsNode]]:
    """Adds nodes to the shared cluster for one test (`throwaway_node("cloud")`) and removes them
    afterwards, whatever happened: a later test's inventory of the whole cluster must not meet a
    node another test left running."""
    made: list[str] = []

    def make(stem: str) -> NetnsNode:
        node = netns_cluster.add_node(f"{stem}{len(netns_cluster.nodes)}")
        made.append(node.name)
        return node

    yield make
    for name in made:
        netns_cluster.remove_node(name)
