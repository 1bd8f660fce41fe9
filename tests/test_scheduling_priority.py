"""Which simulations Snakemake starts first: the long runtime class, then the larger clusters."""

from __future__ import annotations

from reprise.data.clusters import cluster_from_name
from reprise.policies.registry import simulation_priority


def _priority(policy: str, cluster: str) -> int:
    return simulation_priority(policy, cluster_from_name(cluster).num_gpus)


def test_pollux_seeds_come_first_then_the_largest_clusters() -> None:
    # Figure 8(b)'s 1,024-GPU runs (its largest traces) before its 512-GPU ones, those before
    # Figures 9-11 (128 GPUs) and Philly (32 GPUs)
    order = [
        _priority("pollux", "n16g4"),
        _priority("ef-accessctrl", "n128g8"),
        _priority("ef-accessctrl", "n64g8"),
        _priority("ef-accessctrl", "n16g8"),
        _priority("ef-accessctrl", "n4g8"),
    ]
    assert order == sorted(order, reverse=True) and len(set(order)) == len(order)
    # the runtime class outweighs any cluster the figures use
    assert _priority("pollux", "n16g4") > _priority("themis", "n512g8")
