"""Fault tolerance of the real workflow: a failing job with -k, a killed controller, a retry.

Each scenario runs a cut-down experiment (12 jobs of the Figure 8(a) trace, cheap policies) in its
own copy of the workflow and compares the final outputs with a fault-free run of that experiment.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
from infra.workflow import (
    RESULT_PATTERNS,
    SNAKEMAKE,
    TINY_TABLE,
    copy_workflow,
    digest,
    fields,
    job_blocks,
    job_counts,
    mtimes,
    run_snakemake,
    tiny_config,
)

from reprise import faults

POLICIES = ["edf", "edf-accessctrl", "gandiva"]
RUN = "results/runs/sim/tiny/tiny/n4g8"
NO_FAULTS = {faults.FAIL_RUN: "", faults.FAIL_ATTEMPTS: "", faults.STALL_RUN: ""}


@dataclass(frozen=True)
class Reference:
    root: Path  # a workflow copy that ran the experiment without faults
    config: Path
    results: dict[str, str]


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, mirror: Path) -> Reference:
    base = tmp_path_factory.mktemp("faults")
    config = tiny_config(base, mirror, POLICIES)
    root = copy_workflow(base / "reference")
    result = run_snakemake(
        root, TINY_TABLE, "-c2", "--configfile", str(config), env=env(mirror, NO_FAULTS)
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return Reference(root, config, digest(root / "results", RESULT_PATTERNS))


def env(mirror: Path, extra: Mapping[str, str]) -> dict[str, str]:
    return {"REPRISE_MIRRORS": str(mirror), **NO_FAULTS, **extra}


def fresh_copy(tmp_path: Path, reference: Reference) -> Path:
    return copy_workflow(tmp_path / "wf", resources_from=reference.root)


@pytest.mark.slow
def test_failed_job_with_keep_going_then_rerun_rebuilds_only_it(
    tmp_path: Path, reference: Reference, mirror: Path
) -> None:
    root = fresh_copy(tmp_path, reference)
    args = (TINY_TABLE, "-c2", "-k", "--configfile", str(reference.config))
    failed = run_snakemake(root, *args, env=env(mirror, {faults.FAIL_RUN: "gandiva"}))
    output = failed.stdout + failed.stderr
    assert failed.returncode != 0, output
    assert "injected failure of run tiny/tiny/n4g8/gandiva" in output
    # every job that does not depend on the failed one completed
    for policy in ("edf", "edf-accessctrl"):
        assert (root / RUN / policy / "summary.json").is_file(), policy
    assert not (root / RUN / "gandiva").exists()
    assert not (root / TINY_TABLE).exists()
    before = mtimes(root / "results/runs")

    rerun = run_snakemake(root, *args, env=env(mirror, {}))
    output = rerun.stdout + rerun.stderr
    assert rerun.returncode == 0, output
    assert job_counts(output) == {"simulate": 1, "figure_table": 1}, output
    after = mtimes(root / "results/runs")
    assert {k for k in before if after[k] != before[k]} == set()
    assert digest(root / "results", RESULT_PATTERNS) == reference.results


@pytest.mark.slow
def test_killed_controller_rerun_incomplete_leaves_no_partial_output(
    tmp_path: Path, reference: Reference, mirror: Path
) -> None:
    root = fresh_copy(tmp_path, reference)
    args = (TINY_TABLE, "-c2", "--configfile", str(reference.config))
    partial = root / RUN / "edf-accessctrl" / "jobs.csv"
    stall = {faults.STALL_RUN: "edf-accessctrl", faults.STALL_SECONDS: "300"}
    with (tmp_path / "killed.log").open("w") as log:
        controller = subprocess.Popen(
            [*SNAKEMAKE, *args],
            cwd=root,
            env={k: v for k, v in {**os.environ, **env(mirror, stall)}.items() if v},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: the kill takes its jobs too
        )
        try:
            deadline = time.monotonic() + 120
            while not (partial.is_file() and partial.read_text() == "job_id,"):
                assert controller.poll() is None, (tmp_path / "killed.log").read_text()
                assert time.monotonic() < deadline, "the stalled job never started"
                time.sleep(0.2)
        finally:
            # the machine running Snakemake and its local jobs dies at once
            os.killpg(controller.pid, signal.SIGKILL)
            controller.wait(timeout=30)
    assert controller.returncode == -signal.SIGKILL
    assert partial.read_text() == "job_id,"  # a partial output is there

    plain = run_snakemake(root, *args, env=env(mirror, {}))
    output = plain.stdout + plain.stderr
    assert plain.returncode != 0 and "IncompleteFilesException" in output, output
    assert "--rerun-incomplete" in output
    assert partial.read_text() == "job_id,"  # refused, nothing touched

    # the killed controller could not release its lock
    locked = run_snakemake(root, *args, "--rerun-incomplete", env=env(mirror, {}))
    assert locked.returncode != 0 and "--unlock" in locked.stdout + locked.stderr
    unlock = run_snakemake(root, *args, "--unlock", env=env(mirror, {}))
    assert unlock.returncode == 0, unlock.stdout + unlock.stderr

    resumed = run_snakemake(root, *args, "--rerun-incomplete", env=env(mirror, {}))
    output = resumed.stdout + resumed.stderr
    assert resumed.returncode == 0, output
    assert digest(root / "results", RESULT_PATTERNS) == reference.results
    assert not any(p.read_bytes() == b"job_id," for p in (root / "results").rglob("*.csv"))
    incomplete = root / ".snakemake" / "incomplete"
    assert not incomplete.exists() or not any(incomplete.iterdir())


@pytest.mark.slow
def test_transient_failure_is_retried_with_more_memory(
    tmp_path: Path, reference: Reference, mirror: Path
) -> None:
    root = fresh_copy(tmp_path, reference)
    transient = {faults.FAIL_RUN: "edf", faults.FAIL_ATTEMPTS: "1"}
    args = (TINY_TABLE, "-c2", "--configfile", str(reference.config))

    result = run_snakemake(root, *args, "--retries", "1", env=env(mirror, transient))
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "injected failure of run tiny/tiny/n4g8/edf on start 1" in output
    assert "Trying to restart job" in output
    memory = [
        int(fields(job["resources"])["mem_mb"])
        for job in job_blocks(output, "simulate")
        if fields(job["wildcards"])["policy"] == "edf"
    ]
    assert memory == [2000, 4000], output
    log = (root / "results/logs/sim/tiny/tiny/n4g8/edf.log").read_text()
    assert "start 2, no fault injected" in log
    assert digest(root / "results", RESULT_PATTERNS) == reference.results


# the fault switches themselves


def test_selectors_match_policy_or_run() -> None:
    wc = {"experiment": "tiny", "trace": "t", "cluster": "n4g8", "policy": "edf"}
    assert faults.selected("edf", wc)
    assert faults.selected("gandiva, edf", wc)
    assert faults.selected("tiny/*/n4g8/edf", wc)
    assert not faults.selected("edf-accessctrl", wc)
    assert not faults.selected("", wc)


def test_fail_attempts_counts_starts(tmp_path: Path) -> None:
    wc = {"experiment": "x", "trace": "t", "cluster": "n1g1", "policy": "edf"}
    environ = {
        faults.FAIL_RUN: "edf",
        faults.FAIL_ATTEMPTS: "2",
        faults.FAULT_STATE: str(tmp_path / "state"),
    }
    for start in (1, 2):
        with pytest.raises(faults.InjectedFault, match=f"on start {start}"):
            faults.check_failure(wc, environ)
    faults.check_failure(wc, environ)  # third start passes
    faults.check_failure(wc, {})  # no variables, no fault
    with pytest.raises(faults.InjectedFault):
        faults.check_failure(wc, {**environ, faults.FAIL_RUN: "*", faults.FAIL_ATTEMPTS: ""})


def test_unset_variables_inject_nothing(tmp_path: Path) -> None:
    out = tmp_path / "run" / "jobs.csv"
    faults.stall_if_selected({"policy": "edf"}, out, {})
    assert not out.exists()
    assert shutil.which("timeout"), "coreutils timeout wraps every snakemake call in these tests"
