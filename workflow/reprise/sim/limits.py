"""The upper bound on the GPUs an elastic job may use, read off its throughput profile."""

from __future__ import annotations

from reprise.data.profiles import ThroughputProfiles


def max_gpu_from_profile(profiles: ThroughputProfiles, model: str, batch_size: int) -> int:
    """Largest profile column whose cell is not the text `nan` (empty cells count), capped."""
    best = 0
    for g, text in profiles.row(model, batch_size).cells:
        if text == "nan":
            continue
        best = max(best, g)
    return min(64, best, batch_size)
