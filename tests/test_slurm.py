"""The workflow on a real one-node Slurm cluster through `--profile slurm`.

The cluster is started by tests/infra/start-slurm.sh and stopped by tests/infra/stop-slurm.sh,
once per session (the `slurm` fixture of tests/infra/slurm.py, registered in conftest.py).

The cluster has no accounting database, so the profile's automatic status mode must pick squeue
(MinJobAge=600 in the test cluster's slurm.conf). Every snakemake call runs under `timeout -k 5`:
with a status command that cannot answer, the executor plugin would wait forever.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from infra.workflow import (
    REPO,
    RESULT_PATTERNS,
    SNAKEMAKE,
    TINY_TABLE,
    WITHOUT_POLLUX,
    copy_workflow,
    digest,
    fields,
    job_blocks,
    run_snakemake,
    tiny_config,
)

POLICIES = ["edf", "gandiva"]
SUBMITTED = re.compile(r"has been submitted with SLURM jobid (\d+)")
CLUSTER_SPEC = (
    "resources/upstream/ElasticFlow-artifact/ElasticFlow/scheduler/cluster_specs/n4g8.csv"
)


@dataclass(frozen=True)
class Runs:
    local: Path
    slurm: Path
    config: Path
    output: str  # what `snakemake --profile slurm` printed
    seconds: float


def slurm_jobs(env: dict[str, str]) -> dict[str, tuple[str, str]]:
    """Every job slurmctld still knows (MinJobAge=600): id -> (state, working directory)."""
    shown = subprocess.run(
        ["squeue", "-t", "all", "-h", "-o", "%i|%T|%Z"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    jobs = {}
    for line in shown.splitlines():
        job_id, state, workdir = line.strip().split("|", 2)
        jobs[job_id] = (state, workdir)
    return jobs


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, mirror: Path, slurm: dict[str, str]) -> Runs:
    base = tmp_path_factory.mktemp("slurm")
    config = tiny_config(base, mirror, POLICIES)
    env = {"REPRISE_MIRRORS": str(mirror)}
    local = copy_workflow(base / "local")
    result = run_snakemake(local, TINY_TABLE, "-c2", "--configfile", str(config), env=env)
    assert result.returncode == 0, result.stdout + result.stderr

    on_slurm = copy_workflow(base / "on-slurm", resources_from=local)
    (on_slurm / CLUSTER_SPEC).unlink()  # so the data stage runs once more (on the host)
    start = time.monotonic()
    result = run_snakemake(
        on_slurm,
        "--profile",
        "slurm",
        TINY_TABLE,
        "--configfile",
        str(config),
        env={**env, **slurm},
        timeout=420,
    )
    seconds = time.monotonic() - start
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    return Runs(local, on_slurm, config, output, seconds)


@pytest.mark.slow
def test_profile_slurm_runs_every_job_through_slurm(runs: Runs, slurm: dict[str, str]) -> None:
    submitted = SUBMITTED.findall(runs.output)
    # prepare_trace + 2 x simulate; fetch_upstream and figure_table are localrules (Snakefile)
    assert len(submitted) == 3, runs.output
    assert "localrule fetch_upstream" in runs.output
    known = slurm_jobs(slurm)
    for job_id in submitted:
        state, workdir = known[job_id]
        assert state == "COMPLETED", (job_id, state)
        assert Path(workdir).resolve() == runs.slurm.resolve()
    assert "Falling back" not in runs.output  # the squeue mode was accepted as is
    print(f"snakemake --profile slurm: {len(submitted)} Slurm jobs in {runs.seconds:.1f} s")


@pytest.mark.slow
def test_results_on_slurm_equal_the_local_run(runs: Runs) -> None:
    local = digest(runs.local / "results", RESULT_PATTERNS)
    assert local and digest(runs.slurm / "results", RESULT_PATTERNS) == local
    assert (runs.slurm / CLUSTER_SPEC).read_bytes() == (runs.local / CLUSTER_SPEC).read_bytes()


@pytest.mark.slow
def test_profile_resources_reach_the_jobs(runs: Runs) -> None:
    simulate = job_blocks(runs.output, "simulate")
    assert len(simulate) == 2
    for job in simulate:
        resources = fields(job["resources"])
        assert resources["mem_mb"] == "2000" and resources["runtime"] == "30"
        assert resources["cpus_per_task"] == "1"
    table = fields(job_blocks(runs.output, "figure_table")[0]["resources"])
    assert (table["mem_mb"], table["runtime"]) == ("1000", "10")


@pytest.mark.slow
def test_scancelled_job_is_detected_and_retried(
    runs: Runs, slurm: dict[str, str], mirror: Path, tmp_path: Path
) -> None:
    run = runs.slurm / "results/runs/sim/tiny/tiny/n4g8/edf"
    shutil.rmtree(run)
    target = str(run.relative_to(runs.slurm) / "summary.json")
    args = ["--profile", "slurm", target, "--configfile", str(runs.config)]
    env = {**os.environ, "REPRISE_MIRRORS": str(mirror), "REPRISE_PROGRESS": "0", **slurm}
    lines: list[str] = []
    cancelled = None
    with subprocess.Popen(
        ["timeout", "-k", "5", "300", *SNAKEMAKE, *args],
        cwd=runs.slurm,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as controller:
        assert controller.stdout is not None
        for line in controller.stdout:
            lines.append(line)
            match = SUBMITTED.search(line)
            if match and cancelled is None:
                cancelled = match.group(1)
                subprocess.run(["scancel", cancelled], env=env, check=True, timeout=30)
        controller.wait(timeout=60)
    output = "".join(lines)
    assert controller.returncode == 0, output
    assert cancelled is not None, output
    assert f"SLURM-job '{cancelled}' failed, SLURM status is: 'CANCELLED'" in output
    assert "Trying to restart job" in output
    retried = [j for j in SUBMITTED.findall(output) if j != cancelled]
    assert len(retried) == 1, output
    known = slurm_jobs(slurm)
    assert known[cancelled][0] == "CANCELLED"
    assert known[retried[0]][0] == "COMPLETED"
    memory = [fields(job["resources"])["mem_mb"] for job in job_blocks(output, "simulate")]
    assert memory == ["2000", "4000"], output  # the retry asks for more memory
    local = digest(runs.local / "results/runs/sim/tiny/tiny/n4g8/edf")
    assert digest(run) == local


def test_site_values_come_from_the_environment(tmp_path: Path) -> None:
    """REPRISE_SLURM_ACCOUNT/PARTITION reach every job's resources (dry run, no cluster needed)."""
    profile = yaml.safe_load((REPO / "slurm" / "config.yaml").read_text())
    assert profile["executor"] == "slurm" and profile["__use_yte__"] is True
    env = {
        "REPRISE_SLURM_ACCOUNT": "proj-42",
        "REPRISE_SLURM_PARTITION": "short",
        "REPRISE_SLURM_STATUS_COMMAND": "sacct",
    }
    root = copy_workflow(tmp_path / "wf")
    result = run_snakemake(root, "--profile", "slurm", "all", "-n", env=env, timeout=120)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    jobs = job_blocks(output, "simulate")
    assert jobs, output
    for job in jobs:
        resources = fields(job["resources"])
        assert resources["slurm_account"] == "proj-42"
        assert resources["slurm_partition"] == "short"


@pytest.mark.slow
def test_figure8a_through_slurm_equals_the_local_run(
    tmp_path: Path, mirror: Path, slurm: dict[str, str]
) -> None:
    """The issue's acceptance run: `snakemake --profile slurm figure8a` on this cluster."""
    env = {"REPRISE_MIRRORS": str(mirror)}
    local = copy_workflow(tmp_path / "local")
    result = run_snakemake(local, "figure8a", "-c2", *WITHOUT_POLLUX, env=env, timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    on_slurm = copy_workflow(tmp_path / "on-slurm", resources_from=local)
    result = run_snakemake(
        on_slurm,
        "--profile",
        "slurm",
        "figure8a",
        *WITHOUT_POLLUX,
        env={**env, **slurm},
        timeout=1200,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    # prepare_trace, the seven simulations and the figure went through sbatch
    assert len(SUBMITTED.findall(output)) == 9, output
    assert digest(on_slurm / "results", RESULT_PATTERNS) == digest(
        local / "results", RESULT_PATTERNS
    )
    table = (on_slurm / "results/tables/figure8a.csv").read_text()
    assert ",142,195," in table and ",61,195," in table
