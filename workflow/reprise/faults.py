"""Fault injection for the fault-tolerance tests: make chosen simulation jobs fail or stall.

Faults are chosen through environment variables, never through rule params, so injecting one does
not change how Snakemake sees the job (a params change would rerun it). Unset variables = no fault.

- ``REPRISE_FAIL_RUN``: the job fails at start with ``InjectedFault``.
- ``REPRISE_FAIL_ATTEMPTS``: with ``REPRISE_FAIL_RUN``, fail only the first N starts of the job
  (``1`` = a transient fault that ``--retries 1`` gets past); default: every start. Starts are
  counted in files under ``REPRISE_FAULT_STATE`` (default ``.snakemake/reprise-faults`` in the
  working directory, which cluster jobs share); Snakemake does not hand scripts the attempt number.
- ``REPRISE_STALL_RUN``: the job writes the first bytes of its first output, then sleeps
  ``REPRISE_STALL_SECONDS`` (default 600): a job caught mid-write when its controller dies.

Each ``*_RUN`` value is a comma-separated list of shell patterns matched against the policy
(``edf``) and against the run ``experiment/trace/cluster/policy``.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

FAIL_RUN = "REPRISE_FAIL_RUN"
FAIL_ATTEMPTS = "REPRISE_FAIL_ATTEMPTS"
FAULT_STATE = "REPRISE_FAULT_STATE"
STALL_RUN = "REPRISE_STALL_RUN"
STALL_SECONDS = "REPRISE_STALL_SECONDS"


class InjectedFault(RuntimeError):
    """A failure requested through REPRISE_FAIL_RUN."""


def run_id(wildcards: Mapping[str, str]) -> str:
    keys = ("experiment", "trace", "cluster", "policy")
    return "/".join(str(wildcards[k]) for k in keys if k in wildcards)


def selected(selector: str, wildcards: Mapping[str, str]) -> bool:
    """Whether a comma-separated list of patterns names this run (by policy or by run id)."""
    names = [run_id(wildcards)]
    if "policy" in wildcards:
        names.append(str(wildcards["policy"]))
    patterns = [p.strip() for p in selector.split(",") if p.strip()]
    return any(fnmatchcase(name, p) for p in patterns for name in names)


def count_start(wildcards: Mapping[str, str], environ: Mapping[str, str] = os.environ) -> int:
    """Record one more start of this run and return how many there have been (1 = first)."""
    state = Path(environ.get(FAULT_STATE, "") or ".snakemake/reprise-faults")
    state.mkdir(parents=True, exist_ok=True)
    with (state / (run_id(wildcards).replace("/", "__") + ".starts")).open("a+") as fh:
        fh.write("x")
        fh.seek(0)
        return len(fh.read())


def check_failure(wildcards: Mapping[str, str], environ: Mapping[str, str] = os.environ) -> None:
    """Raise InjectedFault when REPRISE_FAIL_RUN selects this run (on this start)."""
    selector = environ.get(FAIL_RUN, "")
    if not selector or not selected(selector, wildcards):
        return
    limit = environ.get(FAIL_ATTEMPTS, "").strip()
    start = count_start(wildcards, environ)
    if limit:
        try:
            failing_starts = int(limit)
        except ValueError:
            raise ValueError(f"{FAIL_ATTEMPTS}={limit!r} is not an integer") from None
        if start > failing_starts:
            print(f"run {run_id(wildcards)}: start {start}, no fault injected", file=sys.stderr)
            return
    raise InjectedFault(
        f"injected failure of run {run_id(wildcards)} on start {start} "
        f"({FAIL_RUN}={selector!r}{f', {FAIL_ATTEMPTS}={limit}' if limit else ''})"
    )


def stall_if_selected(
    wildcards: Mapping[str, str], first_output: Path, environ: Mapping[str, str] = os.environ
) -> None:
    """Leave a partial first output behind and sleep, when REPRISE_STALL_RUN selects this run."""
    selector = environ.get(STALL_RUN, "")
    if not selector or not selected(selector, wildcards):
        return
    seconds = float(environ.get(STALL_SECONDS, "600"))
    first_output.parent.mkdir(parents=True, exist_ok=True)
    with first_output.open("w") as fh:
        fh.write("job_id,")  # a header cut short: what a kill in the middle of a write leaves
    print(f"stalling run {run_id(wildcards)} for {seconds:g} s ({STALL_RUN})", file=sys.stderr)
    sys.stderr.flush()
    time.sleep(seconds)


def inject(smk: Any) -> None:
    """Apply the faults the environment asks for to one job (`smk` is the `snakemake` object)."""
    wildcards = dict(smk.wildcards.items())
    check_failure(wildcards)
    stall_if_selected(wildcards, Path(smk.output[0]))
