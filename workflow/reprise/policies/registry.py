"""One entry per policy: where it lives and what the rules, checks, tables and plots need to know.

Adding a policy = one module or package under `reprise.policies` plus one entry here
(docs/adding-a-policy.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from reprise.errors import ConfigError

RuntimeClass = Literal["short", "long"]
RUNTIME_MINUTES: dict[RuntimeClass, int] = {"short": 30, "long": 120}
"""Minutes a simulation job of each class may run (the `runtime` resource of rule simulate)."""


@dataclass(frozen=True)
class PolicyEntry:
    """What the workflow knows about one policy besides its code."""

    module: str
    function: str
    """`simulate(trace, cluster, profiles, options)` entry point in `module`."""
    label: str
    """The name figures and tables show."""
    colour: str
    seeded: bool = False
    """A randomised policy: each run takes a seed (experiments.<name>.seeds)."""
    data: str | None = None
    """Upstream files it reads besides trace and profiles: the catalog's files below this
    prefix (Pollux: one folder of measurements per application)."""
    runtime: RuntimeClass = "short"
    switches: tuple[str, ...] = ()
    """The `simulator` config switches it reads; only these go into its jobs' params."""
    skip_idle_rounds_in_plots: bool = False
    """Figure 10's upstream plot drops this policy's idle rounds (ce == 0) before sampling
    (it reads Chronus' own resource log)."""


_EF = "reprise.policies.elasticflow.policy"
_EDF = "reprise.policies.edf"
_CHRONUS = "reprise.policies.chronus.policy"
_EF_SWITCH = ("ef_scaleup_updates_real_end",)

# policy name (upstream `--schedule` spelling) -> entry
REGISTRY: dict[str, PolicyEntry] = {
    "ef-accessctrl": PolicyEntry(
        _EF, "simulate_with_admission", "ElasticFlow", "#3b6ea8", switches=_EF_SWITCH
    ),
    "ef": PolicyEntry(
        _EF, "simulate_without_admission", "EDF + Elastic Scaling", "#4fa3a5", switches=_EF_SWITCH
    ),
    "edf": PolicyEntry(_EDF, "simulate", "EDF", "#e39c37"),
    "edf-accessctrl": PolicyEntry(
        _EDF, "simulate_with_admission", "EDF + Admission Control", "#7f7f7f"
    ),
    "gandiva": PolicyEntry("reprise.policies.gandiva.policy", "simulate", "Gandiva", "#5a9e4b"),
    "dlas-gpu": PolicyEntry(
        "reprise.policies.tiresias",
        "simulate",
        "Tiresias",
        "#8c5fa8",
        switches=("tiresias_min_slot_end_event",),
    ),
    "themis": PolicyEntry("reprise.policies.themis", "simulate", "Themis", "#c44e52"),
    "chronus": PolicyEntry(
        _CHRONUS, "simulate_milp", "Chronus (MILP)", "#9c6b3c", skip_idle_rounds_in_plots=True
    ),
    "chronus-greedy": PolicyEntry(
        _CHRONUS,
        "simulate_greedy",
        "Chronus (greedy)",
        "#d4a373",
        skip_idle_rounds_in_plots=True,
    ),
    "pollux": PolicyEntry(
        "reprise.policies.pollux.policy",
        "simulate",
        "Pollux",
        "#2f4858",
        seeded=True,
        data="ElasticFlow-artifact/pollux/pollux_simulator/traces/",
        runtime="long",
        switches=("pollux_pymoo_draws",),
    ),
}


def entry_of(name: str) -> PolicyEntry:
    """The registry entry of `name`, or a ConfigError listing the known policies."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise ConfigError(
            f"unknown policy {name!r}; known policies: {', '.join(sorted(REGISTRY))}"
        ) from None


def seeded_policies() -> frozenset[str]:
    return frozenset(name for name, entry in REGISTRY.items() if entry.seeded)


def policy_labels() -> dict[str, str]:
    return {name: entry.label for name, entry in REGISTRY.items()}


def policy_colours() -> dict[str, str]:
    return {name: entry.colour for name, entry in REGISTRY.items()}


def skips_idle_rounds(name: str) -> bool:
    entry = REGISTRY.get(name)
    return entry is not None and entry.skip_idle_rounds_in_plots


def runtime_minutes(name: str) -> int:
    return RUNTIME_MINUTES[entry_of(name).runtime]


GPUS_PER_PRIORITY_STEP = 64


def simulation_priority(name: str, cluster_gpus: int) -> int:
    """Snakemake priority of a simulation: its runtime class, then one step per 64 GPUs of its
    cluster. The larger clusters carry the larger traces (Figure 8(b)'s 12,700-15,800-job ITP
    traces run on 1,024 GPUs), and their runs are the longest of a figure; started first, they
    overlap the many short runs instead of setting the end (docs/scaling.md#a-whole-run)."""
    return runtime_minutes(name) + cluster_gpus // GPUS_PER_PRIORITY_STEP


def switches_of(name: str, switches: dict[str, bool]) -> dict[str, bool]:
    """The configured switches that policy `name` reads (its jobs' params carry only these)."""
    wanted = entry_of(name).switches
    return {key: value for key, value in switches.items() if key in wanted}
