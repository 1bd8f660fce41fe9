"""Scheduling policies, one module or package each, found through `registry.REGISTRY`.

Each exposes `simulate(trace, cluster, profiles, options)`; docs/adding-a-policy.md says how
to add one. A policy imports the engine (`reprise.sim`), data and records, never another policy.
"""

from __future__ import annotations

import importlib
from typing import Protocol

from reprise.data.clusters import ClusterSpec
from reprise.data.profiles import ThroughputProfiles
from reprise.data.traces import TraceJob
from reprise.policies.registry import REGISTRY, entry_of
from reprise.records.outcome import RunOutcome
from reprise.sim.options import SimOptions

__all__ = ["REGISTRY", "Simulate", "get_policy"]


class Simulate(Protocol):
    def __call__(
        self,
        trace: list[TraceJob],
        cluster: ClusterSpec,
        profiles: ThroughputProfiles,
        options: SimOptions,
    ) -> RunOutcome: ...


def get_policy(name: str) -> Simulate:
    entry = entry_of(name)
    module = importlib.import_module(entry.module)
    simulate: Simulate = getattr(module, entry.function)
    return simulate
