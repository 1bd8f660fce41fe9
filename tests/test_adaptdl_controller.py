"""Pollux's policy on our controller, end to end on Docker nodes with real AdaptDL replicas: a job
re-sized by the policy restarts from AdaptDL's checkpoint, a killed replica's job restarts from
its last checkpoint (counted), and nothing is left behind after a run or a failed run."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml
from infra.docker_daemon import daemon_answers

from reprise.data.traces import TraceJob
from reprise.errors import TestbedError
from reprise.testbed.systems.adaptdl.controller import ControllerSettings, run_pollux_nodes

REPO = Path(__file__).resolve().parents[1]
IMAGE = "reprise-node-adaptdl:latest"
CLUSTER = "test-adaptdl"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.docker,
    pytest.mark.skipif(not daemon_answers(), reason="no Docker daemon answers"),
]


@pytest.fixture(scope="module")
def adaptdl_image(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The node image with AdaptDL and this checkout's Reprise, built FROM the node image: the
    pipeline's when `snakemake` made one here, otherwise built as the pipeline builds it (reused
    when the daemon has it; a clean clone in CI builds it once). Docker's layer cache keeps a
    rebuild of unchanged code to seconds."""
    from reprise.testbed.systems.adaptdl.env import build_adaptdl_image

    work = tmp_path_factory.mktemp("image")
    node = REPO / "results/testbeds/images/node.json"
    if not node.is_file():
        from reprise.testbed.image import build_node_image

        node = work / "node.json"
        build_node_image(workdir=work, log=work / "node.log", record=node, tag="reprise-node:test")
    build_adaptdl_image(node, REPO / "requirements.lock", work / "adaptdl.json", IMAGE)
    return IMAGE


def inventory(tmp: Path, image: str) -> Path:
    """Two Docker nodes of one replica slot each, on a subnet of their own (beside user runs)."""
    doc = yaml.safe_load((REPO / "config/clusters/local-adaptdl.yaml").read_text())
    doc["docker"].update(image=image, subnet="10.231.21.0/24")
    doc["docker"]["groups"][0].update(count=2, slots=1)
    path = tmp / f"{CLUSTER}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def one_job(iterations: int) -> list[TraceJob]:
    return [TraceJob(0, "0", 0, iterations, "resnet50", 240, 64, 1, 120, False)]


def rows(path: Path) -> list[dict[str, str]]:
    with path.open() as fh:
        return list(csv.DictReader(fh))


def nothing_left(out: Path) -> None:
    import docker

    client = docker.from_env()
    left = client.containers.list(all=True, filters={"label": f"reprise.cluster={CLUSTER}"})
    assert not left, [c.name for c in left]
    state = json.loads((out / "run" / "testbed-run.json").read_text())
    assert state["state"] == "closed", state["problems"]
    assert all(p["status"] in ("stopped", "exited") for p in state["processes"])


def test_resized_job_and_killed_replica_restart_from_checkpoints(
    adaptdl_image: str, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    settings = ControllerSettings(interval_s=10, stop_grace_s=30, time_limit_s=900, hints_every_s=5)
    # SIGKILL rank 0 of the job's second incarnation (its first re-allocation) 8 s in. The job
    # is long enough to outlive Pollux's first growth on a quiet machine too (500 iterations
    # ended at 33 s there, before the growth took effect; 2,000 take about 2 min on one replica)
    summary = run_pollux_nodes(
        one_job(iterations=2000),
        inventory(tmp_path, adaptdl_image),
        settings,
        out,
        tmp_path / "state",
        trace_name="test",
        kill={"job-0": (1, 8.0)},
    )
    incarnations = rows(out / "incarnations.csv")
    first, resized, restarted = incarnations[:3]
    # Pollux grew the job once its hints came in: AdaptDL checkpointed and restored
    assert (first["reason"], first["end"], first["replicas"]) == ("initial", "stopped", "1")
    assert (resized["reason"], resized["restored_from"], resized["replicas"]) == (
        "pollux",
        "0",
        "2",
    )
    # the kill: the job came back from the last checkpoint it had, counted as a fault restart
    assert resized["end"] == "failed"
    assert (restarted["reason"], restarted["restored_from"]) == ("fault", "0")
    assert summary["fault_restarts"] == 1
    assert summary["reallocations"]["up"] >= 1
    assert incarnations[-1]["end"] == "done"
    allocations = rows(out / "allocations.csv")
    assert [a["reason"] for a in allocations[:3]] == ["initial", "pollux", "fault"]
    job = rows(out / "jobs.csv")[0]
    assert job["end_time"] and int(job["preempt"]) == len(incarnations) - 1
    assert summary["run"]["kind"] == "testbed" and summary["monitor"]["missing"] == 0
    nothing_left(out)


def test_a_failed_run_leaves_nothing_behind(adaptdl_image: str, tmp_path: Path) -> None:
    out = tmp_path / "run"
    settings = ControllerSettings(interval_s=10, time_limit_s=25)
    with pytest.raises(TestbedError, match="time limit of 25 s"):
        run_pollux_nodes(
            one_job(iterations=100_000),
            inventory(tmp_path, adaptdl_image),
            settings,
            out,
            tmp_path / "state",
            trace_name="test",
        )
    assert not (out / "summary.json").exists()
    assert rows(out / "allocations.csv")[0]["reason"] == "initial"
    nothing_left(out)


def test_rates_are_measured_on_the_nodes_and_nothing_is_left(
    adaptdl_image: str, tmp_path: Path
) -> None:
    """`samples_per_s: measure`: real AdaptDL replicas of the model, one on each node's slot at
    once (one round: a single model fills the slots), give a rate per replica, each also over its
    window's halves; the record is written and the nodes are gone afterwards."""
    from reprise.testbed.systems.adaptdl.calibrate import CalibrationSettings, measure_rates

    out = tmp_path / "rates"
    record = measure_rates(
        {"resnet50": 64},
        inventory(tmp_path, adaptdl_image),
        ControllerSettings(hints_every_s=10),
        CalibrationSettings(warmup_s=2, seconds=5),
        out,
        tmp_path / "state",
        progress=lambda _: None,
    )
    assert record["samples_per_s"]["resnet50"] > 0
    assert len(record["models"]["resnet50"]["replicas"]) == 2  # one replica on each node
    assert record["rounds"] == 1 and sorted(record["models"]["resnet50"]["on"]) == [
        "test-adaptdl-default-0/0",
        "test-adaptdl-default-1/0",
    ]
    assert all(len(m["halves"]) == 2 and min(m["halves"]) > 0 for m in record["measurements"])
    assert json.loads((out / "rates.json").read_text()) == record
    nothing_left(out)
