"""Local runs go without Snakemake's job rate limiter and the re-check timers it multiplies."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace

from infra.workflow import TINY_TABLE, copy_workflow, run_snakemake, tiny_config

from reprise.rate_limit import drop_local_rate_limit

COUNTING_SNAKEMAKE = """\
import json, os, runpy, sys, threading

started = []
plain_start = threading.Timer.start


def start(self):
    started.append(getattr(self.function, "__qualname__", repr(self.function)))
    plain_start(self)


threading.Timer.start = start
try:
    sys.argv = ["snakemake", *sys.argv[1:]]
    runpy.run_module("snakemake", run_name="__main__")
finally:
    with open(os.environ["TIMER_LOG"], "w") as fh:
        json.dump(started, fh)
"""
"""Snakemake, with every `threading.Timer` it starts written (by function name) to $TIMER_LOG."""


def _workflow(local: bool, limiter: object | None) -> SimpleNamespace:
    return SimpleNamespace(local_exec=local, scheduler=SimpleNamespace(job_rate_limiter=limiter))


def test_a_local_run_loses_its_limiter() -> None:
    workflow = _workflow(local=True, limiter=object())
    assert drop_local_rate_limit(workflow)
    assert workflow.scheduler.job_rate_limiter is None
    assert not drop_local_rate_limit(workflow)


def test_a_remote_executor_keeps_its_limit() -> None:
    limiter = object()
    workflow = _workflow(local=False, limiter=limiter)
    assert not drop_local_rate_limit(workflow)
    assert workflow.scheduler.job_rate_limiter is limiter


def test_a_scheduler_without_the_attribute_is_left_alone() -> None:
    workflow = SimpleNamespace(local_exec=True, scheduler=SimpleNamespace())
    assert not drop_local_rate_limit(workflow)
    assert not hasattr(workflow.scheduler, "job_rate_limiter")


def _scheduler_timers(root: Path, config: Path, mirror: Path, *extra: str) -> list[str]:
    (root / "counting_snakemake.py").write_text(COUNTING_SNAKEMAKE)
    log = root / "timers.json"
    result = run_snakemake(
        root,
        TINY_TABLE,
        "-c2",
        "--configfile",
        str(config),
        *extra,
        env={"REPRISE_MIRRORS": str(mirror), "TIMER_LOG": str(log)},
        timeout=300,
        command=[sys.executable, "counting_snakemake.py"],
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return [name for name in json.loads(log.read_text()) if "JobScheduler" in name]


def test_a_local_run_starts_no_recheck_timers(tmp_path: Path, mirror: Path) -> None:
    root = copy_workflow(tmp_path / "reprise")
    config = tiny_config(tmp_path, mirror, ["edf", "gandiva", "dlas-gpu"])
    assert _scheduler_timers(root, config, mirror) == []
    assert (root / TINY_TABLE).is_file()
    # without our onstart hook Snakemake's command-line default limit (100/1s) is in force
    # and each scheduler pass that finds ready jobs starts a timer: the count above is real
    assert len(_scheduler_timers(root, config, mirror, "--forceall", "--no-hooks")) >= 3
