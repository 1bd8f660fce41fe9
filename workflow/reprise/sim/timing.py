"""Slot alignment and the restart/rescale overhead model of upstream
(docs/engine.md#slots, docs/engine.md#overheads)."""

from __future__ import annotations

import math


def align(base: float, t: float, slot: int) -> float:
    """base + slot * ceil((t - base) / slot), a true ceiling also for t < base."""
    diff = t - base
    n = diff // slot
    if diff % slot > 0:
        n += 1
    return base + n * slot


def overhead(gpus: int, restart: bool, cached: bool, cluster_gpus: int) -> float:
    """Seconds lost when a job of `gpus` GPUs is (re)launched in a scheduling round."""
    value: float = 7 if cluster_gpus >= 256 else 2
    if cached:
        return value
    if restart:
        value += 27
        if cluster_gpus >= 256:
            value += 20
    return value + (math.log(gpus, 2) + 1) * 2
