"""The free-GPU timeline that planning policies commit jobs onto (docs/engine.md#timeline)."""

from __future__ import annotations

from collections.abc import Mapping

Timeline = dict[float, int]
"""Free GPUs from each key time until the next key. Keys are kept in ascending insertion order
(upstream re-sorts after every insertion and iterates in insertion order)."""


def merge_runs(mapping: Mapping[float, int]) -> dict[float, int]:
    """Drop every key whose value repeats the previously kept value (insertion order)."""
    merged: dict[float, int] = {}
    last: int | None = None
    for t, v in mapping.items():
        if v != last:
            merged[t] = v
            last = v
    return merged
