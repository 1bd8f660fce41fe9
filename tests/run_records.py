"""Write run records in tests the way the simulate stage does, from the summary fields a test
sets (trace instance, cluster name, policy, options.seed)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from reprise.config import split_instance
from reprise.records.outcome import RunOutcome
from reprise.records.result import RunResult
from reprise.records.writer import write_run_record


def write_record(outcome: RunOutcome, outdir: Path, meta: Mapping[str, Any]) -> dict[str, Any]:
    trace, trace_seed = split_instance(str(meta.get("trace", "t")))
    run = RunResult(
        kind="sim",
        experiment=str(meta.get("experiment", "test")),
        trace=trace,
        trace_seed=trace_seed,
        cluster=str(meta.get("cluster", {}).get("name", "n1g1")),
        policy=str(meta["policy"]),
        policy_seed=meta.get("options", {}).get("seed"),
        outcome=outcome,
    )
    return write_run_record(run, outdir, meta)
