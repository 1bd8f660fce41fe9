"""The knobs of one simulation run."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SimOptions:
    """Knobs of one run; the `ef_`/`tiresias_` booleans are upstream version switches
    (docs/engine.md#switches)."""

    slot: int = 60
    gpu_type: str = "A100"
    ef_scaleup_updates_real_end: bool = False
    tiresias_min_slot_end_event: bool = False
    pollux_pymoo_draws: bool = False
    """Pollux's search draws in pymoo's order (`compiled.run_nsga2`, the earlier records)
    instead of one candidate at a time (`fused.run_fused`); docs/policies/pollux.md."""
    record_gpu_map: bool = False
    """Keep the per-GPU job map of every round (Figure 10); off by default, it is large."""
    show_progress: bool = False
    data_root: str = ""
    """Directory holding `ElasticFlow-artifact/...` (Pollux reads its ground truth there)."""
    seed: int = 0
    """Seed of the randomised policies (Pollux's search)."""
    max_overhead: float | None = None
    """Cap on the overhead charged per job and round (upstream's testbed caps measured
    restarts at 20 s); None charges what the executor reports."""
