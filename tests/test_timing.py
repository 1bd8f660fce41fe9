"""Slot alignment and the restart/rescale overhead model (docs/engine.md#slots,
docs/engine.md#overheads)."""

from __future__ import annotations

import pytest

from reprise.sim.timing import align, overhead


@pytest.mark.parametrize(
    ("base", "t", "slot", "expected"),
    [
        (100, 100, 60, 100),
        (100, 101, 60, 160),
        (100, 160, 60, 160),
        (100, 40, 60, 40),
        (100, 39, 60, 40),
    ],
)
def test_align_is_a_true_ceiling_from_the_base(base: int, t: int, slot: int, expected: int) -> None:
    assert align(base, t, slot) == expected


def test_overhead_examples_from_the_spec() -> None:
    # N = 128: g=1 -> 4 s, g=8 -> 10 s, g=64 -> 16 s; a restart round adds 27 s
    assert overhead(1, restart=False, cached=False, cluster_gpus=128) == pytest.approx(4)
    assert overhead(8, restart=False, cached=False, cluster_gpus=128) == pytest.approx(10)
    assert overhead(64, restart=False, cached=False, cluster_gpus=128) == pytest.approx(16)
    assert overhead(8, restart=True, cached=False, cluster_gpus=128) == pytest.approx(37)


def test_cached_placement_pays_only_the_base() -> None:
    assert overhead(16, restart=True, cached=True, cluster_gpus=64) == 2
    assert overhead(16, restart=True, cached=True, cluster_gpus=256) == 7


def test_large_clusters_pay_more() -> None:
    # >= 256 GPUs: base 7 s, restart 27 + 20 s
    assert overhead(4, restart=True, cached=False, cluster_gpus=256) == pytest.approx(7 + 47 + 6)
