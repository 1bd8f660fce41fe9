"""Throughput profiling: rank placement, upstream-format tables, the run record, and
`snakemake throughput_profile` end to end on Docker nodes and on plain SSH hosts."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from infra.docker_daemon import daemon_answers
from infra.netns_nodes import NetnsCluster
from infra.workflow import copy_workflow, run_snakemake

from reprise.analysis.throughput import throughput_table
from reprise.errors import TestbedError
from reprise.records.writer import EVENT_COLUMNS, JOB_COLUMNS
from reprise.testbed.nodes import Node
from reprise.testbed.placement import place_ranks
from reprise.testbed.profile_record import write_profile_record
from reprise.testbed.profiling import Measurement, upstream_tables
from reprise.testbed.throughput_profile import settings_from_config


def _nodes(*slots: int) -> list[Node]:
    return [
        Node(name=f"n{i}", group="g", address=f"10.0.0.{i}", peer_address=f"10.0.0.{i}", slots=s)
        for i, s in enumerate(slots)
    ]


def test_pack_fills_a_node_before_the_next() -> None:
    ranks = place_ranks(_nodes(2, 2, 2), 3, "pack")
    assert [(r.rank, r.node.name, r.local_rank) for r in ranks] == [
        (0, "n0", 0),
        (1, "n0", 1),
        (2, "n1", 0),
    ]


def test_spread_deals_ranks_round_robin() -> None:
    ranks = place_ranks(_nodes(2, 2, 2), 4, "spread")
    assert [r.node.name for r in ranks] == ["n0", "n1", "n2", "n0"]
    assert [r.local_rank for r in ranks] == [0, 0, 0, 1]


def test_too_many_workers_names_the_slots() -> None:
    with pytest.raises(TestbedError, match=r"5 workers do not fit the cluster's 4 slots"):
        place_ranks(_nodes(1, 3), 5)


def _m(model: str, batch: int, workers: int, its: float) -> Measurement:
    return Measurement(
        model=model,
        size="tiny",
        global_batch=batch,
        workers=workers,
        iterations_per_s=its,
        samples_per_s=its * batch,
        seconds=10 / its,
        wall_s=5.0,
        started_s=workers * 10.0,
        nodes=tuple(f"n{i}" for i in range(workers)),
        backend="gloo",
        device="cpu",
    )


RESULTS = [
    _m("vgg16", 16, 1, 10.0),
    _m("vgg16", 16, 2, 16.0),
    _m("vgg16", 32, 1, 5.0),
    _m("vgg16", 32, 2, 9.0),
    _m("gpt2", 16, 1, 4.0),
]


def test_upstream_layout_rows_are_batches_columns_are_workers() -> None:
    tables = upstream_tables(RESULTS)
    rows = list(csv.reader(tables["vgg16"].splitlines()))
    assert rows == [["global_batch_size", "1", "2"], ["16", "10.0", "16.0"], ["32", "5.0", "9.0"]]
    assert tables["gpt2"] == "global_batch_size,1\n16,4.0\n"


def test_run_record_has_the_simulation_record_shape(tmp_path: Path) -> None:
    summary = write_profile_record(
        tmp_path, RESULTS, {"vgg16": 40.0, "gpt2": 5.5}, {"cluster": "c", "experiment": "x"}
    )
    with (tmp_path / "jobs.csv").open() as fh:
        jobs = list(csv.reader(fh))
    assert tuple(jobs[0]) == JOB_COLUMNS
    assert len(jobs) == 1 + len(RESULTS)
    with (tmp_path / "events.csv").open() as fh:
        assert tuple(next(csv.reader(fh))) == EVENT_COLUMNS
    assert summary["kind"] == "testbed"
    assert summary["metrics"]["profiling_seconds_total"] == 45.5
    assert json.loads((tmp_path / "summary.json").read_text()) == summary
    assert (tmp_path / "profiles" / "vgg16.csv").read_text().startswith("global_batch_size,1,2\n")


def test_scaling_efficiency_is_speedup_over_workers(tmp_path: Path) -> None:
    write_profile_record(tmp_path, RESULTS, {"vgg16": 1.0, "gpt2": 1.0}, {"cluster": "c"})
    table = throughput_table([tmp_path])
    row = table[(table.model == "vgg16") & (table.global_batch == 16) & (table.workers == 2)]
    assert row["speedup"].item() == pytest.approx(1.6)
    assert row["scaling_efficiency"].item() == pytest.approx(0.8)


def test_settings_take_the_config_block() -> None:
    s = settings_from_config({"cluster": "x", "models": ["bert"], "workers": [1, 3]})
    assert s.models == ("bert",)
    assert s.workers == (1, 3)
    assert s.size == "tiny"


# --- end to end ---------------------------------------------------------------------------


def _leftovers(label: str) -> tuple[list[str], list[str]]:
    import docker

    client = docker.from_env()
    containers = [c.name for c in client.containers.list(all=True, filters={"label": label})]
    networks = [n.name for n in client.networks.list(filters={"label": label})]
    return containers, networks


def _trainer_processes(marker: str = "") -> list[str]:
    """Trainers still running on this machine (with `marker`, e.g. a test's folder, in argv)."""
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    return [
        line
        for line in out.splitlines()
        if "reprise.testbed.trainers.run" in line and marker in line
    ]


def _testbed_config(directory: Path, cluster: str, **profile: object) -> str:
    """A config file that points the testbed stage at `cluster` with small, quick settings
    (Snakemake's --config reads nested values as strings, so a file is used)."""
    settings = {
        "cluster": cluster,
        "global_batch_sizes": [8],
        "iterations": 4,
        "warmup": 1,
        **profile,
    }
    path = directory / f"testbed-{cluster}.yaml"
    doc = {"testbed": {"clusters": [cluster], "throughput_profile": settings}}
    path.write_text(yaml.safe_dump(doc))
    return str(path)


def _check_outputs(workdir: Path, cluster: str, models: list[str], workers: list[int]) -> None:
    table = pd.read_csv(workdir / "results/tables/throughput_profile.csv")
    assert sorted(table.model.unique()) == sorted(models)
    assert sorted(table.workers.unique()) == workers
    assert (table.iterations_per_s > 0).all()
    assert (table[table.workers == 1].scaling_efficiency == 1.0).all()
    times = pd.read_csv(workdir / "results/tables/throughput_profile_time.csv")
    assert sorted(times.model) == sorted(models)
    assert (times.seconds > 0).all()
    for fig in ("pdf", "png"):
        assert (workdir / f"results/figures/throughput_profile.{fig}").stat().st_size > 1000
    record = workdir / "results/runs/testbed/throughput_profile" / cluster
    header = (record / "profiles" / f"{models[0]}.csv").read_text().splitlines()[0]
    assert header == ",".join(["global_batch_size", *map(str, workers)])
    nodes = json.loads((workdir / f"results/testbeds/{cluster}/nodes.json").read_text())
    assert all(n["packages"]["torch"] for n in nodes["nodes"])


@pytest.mark.slow
@pytest.mark.docker
@pytest.mark.skipif(os.geteuid() != 0, reason="Docker nodes need root here")
def test_snakemake_throughput_profile_on_docker_nodes(tmp_path: Path) -> None:
    if not daemon_answers():
        pytest.skip("no Docker daemon answers (CI starts one: tests/infra/start-dockerd.sh)")
    workdir = copy_workflow(tmp_path / "wf")
    result = run_snakemake(workdir, "throughput_profile", "-c2", timeout=2400)
    assert result.returncode == 0, result.stderr[-4000:]
    config = yaml.safe_load((workdir / "config/config.yaml").read_text())
    models = config["testbed"]["throughput_profile"]["models"]
    _check_outputs(workdir, "local-docker", models, [1, 2, 4])
    assert _leftovers("reprise.cluster=local-docker") == ([], [])
    assert _trainer_processes("/tmp/reprise/runs/") == []  # the nodes' workdir
    again = run_snakemake(workdir, "throughput_profile", "-c2", "-n")
    assert "Nothing to be done" in again.stdout + again.stderr


@pytest.mark.slow
def test_snakemake_throughput_profile_on_ssh_hosts(
    netns_cluster: NetnsCluster, tmp_path: Path
) -> None:
    """The same stage through plain SSH hosts (sshd in network namespaces): same table shape."""
    workdir = copy_workflow(tmp_path / "wf")
    known = netns_cluster.known_hosts(tmp_path / "known_hosts")
    netns_cluster.inventory(
        workdir / "config/clusters/test-ssh.yaml",
        ssh={"known_hosts": str(known)},
        workdir=str(tmp_path / "nodes"),
    )
    doc = yaml.safe_load((workdir / "config/clusters/test-ssh.yaml").read_text())
    doc["nodes"] = [n for n in doc["nodes"] if n["name"] in ("n1", "n2")]  # not throw-aways
    for node in doc["nodes"]:
        node["slots"] = 2
    (workdir / "config/clusters/test-ssh.yaml").write_text(yaml.safe_dump(doc))
    models = ["resnet50", "gpt2"]
    override = _testbed_config(tmp_path, "test-ssh", models=models, workers=[1, 2, 4])
    result = run_snakemake(
        workdir, "throughput_profile", "-c1", "--configfile", override, timeout=900
    )
    assert result.returncode == 0, result.stderr[-4000:]
    _check_outputs(workdir, "test-ssh", models, [1, 2, 4])
    assert _trainer_processes(str(tmp_path)) == []


@pytest.mark.slow
def test_snakemake_throughput_profile_through_the_slurm_profile(
    slurm: dict[str, str], tmp_path: Path
) -> None:
    """provision and throughput_profile_run are Slurm jobs; every trainer is an srun step."""
    workdir = copy_workflow(tmp_path / "wf")
    (workdir / ".venv").symlink_to(Path(sys.executable).parents[1])
    override = _testbed_config(tmp_path, "local-slurm", models=["resnet50"], workers=[1, 2])
    result = run_snakemake(
        workdir,
        "throughput_profile",
        "--profile",
        str(workdir / "workflow/profiles/slurm"),
        "--configfile",
        override,
        env=slurm,
        timeout=900,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    submitted = re.findall(r"has been submitted with SLURM jobid (\d+)", output)
    assert len(submitted) == 2, output  # provision and throughput_profile_run, nothing else
    _check_outputs(workdir, "local-slurm", ["resnet50"], [1, 2])
    record = workdir / "results/runs/testbed/throughput_profile/local-slurm/run/testbed-run.json"
    steps = json.loads(record.read_text())["processes"]
    assert len(steps) == 3 and all(p["status"] in ("exited", "stopped") for p in steps)
    assert _trainer_processes(str(tmp_path)) == []


SMALL = {"models": ["resnet50", "gpt2"], "workers": [1, 2]}


@pytest.mark.slow
@pytest.mark.docker
@pytest.mark.skipif(os.geteuid() != 0, reason="Docker nodes need root here")
def test_killed_snakemake_tears_the_nodes_down_and_a_rerun_completes(tmp_path: Path) -> None:
    if not daemon_answers():
        pytest.skip("no Docker daemon answers (CI starts one: tests/infra/start-dockerd.sh)")
    workdir = copy_workflow(tmp_path / "wf")
    small = _testbed_config(tmp_path, "local-docker", **SMALL)
    log = workdir / "results/logs/testbed/throughput_profile/local-docker.log"
    env = {**os.environ, "REPRISE_PROGRESS": "0"}
    with (tmp_path / "first.out").open("w") as out:
        first = subprocess.Popen(
            [sys.executable, "-m", "snakemake", "throughput_profile", "-c2", "--configfile", small],
            cwd=workdir,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 1800
            while not (log.exists() and "[1/4]" in log.read_text()):
                assert first.poll() is None, (tmp_path / "first.out").read_text()[-3000:]
                assert time.monotonic() < deadline, "the profiling run never started"
                time.sleep(1)
            first.kill()  # SIGKILL: Snakemake itself cannot clean anything up
            first.wait(30)
        finally:
            if first.poll() is None:
                first.kill()
    # the job's script got SIGTERM from the kernel when Snakemake died, and tears down
    deadline = time.monotonic() + 120
    while _leftovers("reprise.cluster=local-docker") != ([], []):
        assert time.monotonic() < deadline, (_leftovers("reprise.cluster=local-docker"), log)
        time.sleep(1)
    summary = workdir / "results/runs/testbed/throughput_profile/local-docker/summary.json"
    assert not summary.exists()  # nothing half-written is accepted as a result
    # the README's recovery: unlock (Snakemake's own lock outlives a kill -9), then rerun
    unlocked = run_snakemake(workdir, "throughput_profile", "--unlock", "--configfile", small)
    assert unlocked.returncode == 0, unlocked.stderr[-2000:]
    rerun = run_snakemake(
        workdir,
        "throughput_profile",
        "-c2",
        "--rerun-incomplete",
        "--configfile",
        small,
        timeout=1800,
    )
    assert rerun.returncode == 0, rerun.stderr[-4000:]
    _check_outputs(workdir, "local-docker", ["gpt2", "resnet50"], [1, 2])
    assert _leftovers("reprise.cluster=local-docker") == ([], [])
