"""Which run a record belongs to, as separate fields, beside what the run produced."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from reprise.records.outcome import RunOutcome

RunKind = Literal["sim", "testbed"]


@dataclass(frozen=True)
class RunIdentity:
    """Which run: simulated (`sim`) or on real nodes (`testbed`), of which experiment, on which
    trace and cluster, under which policy."""

    kind: RunKind
    experiment: str
    trace: str
    """The configured trace name, without its deadline seed."""
    trace_seed: int | None
    """Deadline seed of a generated trace; None for a trace read as it is."""
    cluster: str
    policy: str
    """The registry name (`ef-accessctrl`), without its seed."""
    policy_seed: int | None
    """Seed of a randomised policy; None for a deterministic one."""

    def identity(self) -> dict[str, Any]:
        """The `run` block of summary.json."""
        return {
            "kind": self.kind,
            "experiment": self.experiment,
            "trace": self.trace,
            "trace_seed": self.trace_seed,
            "cluster": self.cluster,
            "policy": self.policy,
            "policy_seed": self.policy_seed,
        }


@dataclass(frozen=True)
class RunResult(RunIdentity):
    """One run and its outcome."""

    outcome: RunOutcome
