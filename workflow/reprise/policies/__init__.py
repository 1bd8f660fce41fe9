"""Scheduling policies. Each module exposes `simulate(trace, cluster, profiles, options)`.

Adding a policy = one module here plus one entry in `REGISTRY`.
"""

from __future__ import annotations

import importlib
from typing import Protocol

from reprise.data.clusters import ClusterSpec
from reprise.data.profiles import ThroughputProfiles
from reprise.data.traces import TraceJob
from reprise.errors import ConfigError
from reprise.sim.outcome import SimOptions, SimResult


class Simulate(Protocol):
    def __call__(
        self,
        trace: list[TraceJob],
        cluster: ClusterSpec,
        profiles: ThroughputProfiles,
        options: SimOptions,
    ) -> SimResult: ...


# policy name (upstream `--schedule` spelling) -> (module, function)
REGISTRY: dict[str, tuple[str, str]] = {
    "ef-accessctrl": ("reprise.policies.elasticflow", "simulate_with_admission"),
    "ef": ("reprise.policies.elasticflow", "simulate_without_admission"),
    "edf": ("reprise.policies.edf", "simulate"),
    "edf-accessctrl": ("reprise.policies.edf", "simulate_with_admission"),
    "gandiva": ("reprise.policies.gandiva", "simulate"),
    "dlas-gpu": ("reprise.policies.tiresias", "simulate"),
    "themis": ("reprise.policies.themis", "simulate"),
    "chronus": ("reprise.policies.chronus", "simulate_milp"),
    "chronus-greedy": ("reprise.policies.chronus", "simulate_greedy"),
    "pollux": ("reprise.policies.pollux", "simulate"),
}


def get_policy(name: str) -> Simulate:
    try:
        module_name, func = REGISTRY[name]
    except KeyError:
        raise ConfigError(
            f"unknown policy {name!r}; known policies: {', '.join(sorted(REGISTRY))}"
        ) from None
    module = importlib.import_module(module_name)
    simulate: Simulate = getattr(module, func)
    return simulate
