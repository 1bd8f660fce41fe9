"""Elastic node-set placement (docs/engine.md#placement) on hand-made cases.

Expected values were derived by hand from the placement rules of upstream `cluster.py`
(elastic_placement / release_job_res) and the round-log walk of `log.py` (scheduling_result).
"""

from __future__ import annotations

import pytest

from reprise.data.clusters import ClusterSpec
from reprise.errors import SimulationError
from reprise.sim.placement import ElasticPlacement, PlacementCache, cache_flags

N4G4 = ClusterSpec("n4g4", 1, 4, 4)


def _node(p: ElasticPlacement, node: int, gpn: int = 4) -> tuple[int | None, ...]:
    return p.gpu_map()[node * gpn : (node + 1) * gpn]


def test_small_jobs_share_nodes_least_utilised_first() -> None:
    p = ElasticPlacement(N4G4)
    assert p.place(0, 1)  # new set on node 0, free 3 -> class 1
    assert p.place(1, 2)  # class-1 list is not scanned for a 2-GPU job -> new set on node 1
    assert p.place(2, 1)  # joins node 0 (free 2 -> class 2 list)
    assert p.place(3, 2)  # head of class 2 = node 1 (filed first, stable sort) -> full
    assert _node(p, 0) == (0, 2, None, None)
    assert _node(p, 1) == (1, 1, 3, 3)
    assert p.place(4, 4)
    assert p.place(5, 4)
    assert not p.place(6, 8)  # needs two whole free nodes, none left
    assert p.free_gpus() == 2
    assert p.place(6, 2)  # node 0 becomes full
    assert _node(p, 0) == (0, 2, 6, 6)
    assert p.free_gpus() == 0
    # a 1-GPU job tries only the head set of each larger class, each goes to the back of its list
    assert not p.place(7, 1)
    assert p.gpu_map() == (0, 2, 6, 6, 1, 1, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5)


def test_failed_head_goes_to_back_of_its_list() -> None:
    p = ElasticPlacement(N4G4)
    for job in range(4):
        assert p.place(job, 4)  # nodes 0..3, all in the class-4 list, full
    p.release(0)  # node 0 free again
    assert p.free_nodes() == (0,)
    assert p.place(9, 1)  # class 4 head (node 1) is full -> moved to the back; new set on node 0
    assert p.gpu_map()[:4] == (9, None, None, None)


def test_release_reclasses_and_frees_sorted() -> None:
    p = ElasticPlacement(N4G4)
    assert p.place(0, 4)
    assert p.place(1, 1)
    assert p.place(2, 1)
    assert p.place(3, 4)
    assert p.free_nodes() == (3,)
    p.release(0)
    p.release(3)
    assert p.free_nodes() == (0, 2, 3)
    p.release(1)  # node 1 keeps job 2 alone: 3 free -> class 1
    assert _node(p, 1) == (2, None, None, None)
    assert p.free_gpus() == 15
    p.release_all()
    assert p.free_nodes() == (0, 1, 2, 3)
    assert p.free_gpus() == 16
    assert p.gpu_map() == (None,) * 16


def test_whole_node_set_and_cache_ranges() -> None:
    p = ElasticPlacement(N4G4)
    assert p.place(7, 8)  # nodes 0-1
    assert p.place(8, 2)  # node 2
    assert p.place(9, 1)  # joins node 2
    layout = p.layout()
    assert layout.gpu_map[:12] == (7,) * 8 + (8, 8, 9, None)
    assert layout.ranges == ((7, 0, 8), (8, 8, 2), (9, 10, 1))
    cache = PlacementCache(16)
    assert cache_flags(layout, cache) == {7: False, 8: False, 9: False}
    assert cache_flags(layout, cache) == {7: True, 8: True, 9: True}
    cache.clear()
    assert not cache.is_cached(0, 8)
    assert cache.is_cached(0, 8)
    assert not cache.is_cached(0, 4)  # same start, other length: another range
    with pytest.raises(SimulationError):
        cache.is_cached(12, 8)


def test_multi_switch_free_list_interleaves_switches() -> None:
    # quirk: node ids restart in every switch and the free list is sorted by that id
    p = ElasticPlacement(ClusterSpec("s2", 2, 2, 4))
    assert p.place(0, 16)
    p.release(0)
    assert p.free_nodes() == (0, 2, 1, 3)
    assert p.place(1, 4)
    assert p.place(2, 4)
    assert p.gpu_map() == (1, 1, 1, 1, None, None, None, None, 2, 2, 2, 2) + (None,) * 4


def test_unknown_size_and_double_placement_raise() -> None:
    p = ElasticPlacement(N4G4)
    with pytest.raises(SimulationError):
        p.place(0, 3)
    assert p.place(0, 2)
    with pytest.raises(SimulationError):
        p.place(0, 2)
    with pytest.raises(SimulationError):
        p.release(5)


def test_class_field_quirk_crashes_like_upstream() -> None:
    # gpn 8: a 12-GPU job opens a 2-node set filed under class 4 but labelled 12; a 4-GPU job fills
    # it (full: stays in class 4); releasing the 4-GPU job looks for the set in the class-12 list.
    p = ElasticPlacement(ClusterSpec("n2g8", 1, 2, 8))
    assert p.place(0, 12)
    assert p.place(1, 4)
    with pytest.raises(SimulationError):
        p.release(1)
