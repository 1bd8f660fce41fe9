"""RoleML offloading with actors as containers of the run's experimental dockerd: the daemon
starts in experimental mode and leaves nothing when stopped; a run checkpoints a trainer's
container, a restore made to fail brings it back at its source (`offload-failed`), the next
offload and the Decider's succeed with the trainer's state kept, and nothing is left behind
(containers, checkpoints, the daemon, its bridges and forwarding rule, cgroups, stress)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from reprise.errors import ProvisionError
from reprise.testbed.systems.roleml import criu
from reprise.testbed.systems.roleml.dockerd import ExperimentalDockerd
from tests.test_roleml_offload import (
    PIPELINE_CRIU,
    REPO,
    corrupt_first_restore,
    leftovers,
    run_with_fault,
    small_settings,
)

ROLE_IMAGE = REPO / "results" / "testbeds" / "images" / "roleml.json"
# containerd stages each checkpoint in a folder of this name (about 250 MB each)
STAGED_CHECKPOINTS = "ctrd-checkpoint*"
# the experimental daemon's data root: the pipeline's, so the role image is copied in once
DOCKER_ROOT = Path(os.environ.get("REPRISE_ROLEML_DOCKER_ROOT", REPO / "results/roleml/docker"))


def _docker_or_skip() -> str:
    if os.geteuid() != 0:
        pytest.skip("an experimental dockerd beside the host's needs root")
    if shutil.which("dockerd") is None or shutil.which("docker") is None:
        pytest.skip("no Docker engine (dockerd and the docker CLI)")
    if subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
        pytest.skip("the host's Docker daemon does not answer")
    for binary in filter(None, (os.environ.get("REPRISE_CRIU", ""), str(PIPELINE_CRIU))):
        try:
            criu.require_criu(binary)
        except ProvisionError:
            continue
        return binary
    pytest.skip("no CRIU >= 4.2 (set REPRISE_CRIU or run `snakemake roleml_criu`)")


def _bridges(run_id: str) -> list[str]:
    out = subprocess.run(["ip", "-br", "link"], capture_output=True, text=True).stdout
    return [line.split()[0] for line in out.splitlines() if f"rml{run_id}" in line]


def _rules(run_id: str) -> list[str]:
    out = subprocess.run(["iptables", "-S"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if f"rml{run_id}" in line]


def test_experimental_dockerd_starts_and_stops_leaving_nothing(tmp_path: Path) -> None:
    binary = _docker_or_skip()
    dockerd = ExperimentalDockerd("t0est1ab", tmp_path / "root", Path(binary))
    try:
        dockerd.start()
        assert dockerd.proc is not None
        info = json.loads(dockerd.docker("info", "--format", "{{json .}}").stdout)
        assert info["ExperimentalBuild"] is True
        assert dockerd.docker("network", "inspect", dockerd.network).returncode == 0
        assert len(_bridges("t0est1ab")) == 2
        pid = dockerd.proc.pid
    finally:
        dockerd.stop()
    assert (
        not Path(f"/proc/{pid}").exists() or "State:\tZ" in Path(f"/proc/{pid}/status").read_text()
    )
    assert _bridges("t0est1ab") == [] and _rules("t0est1ab") == []
    assert not dockerd.state.exists()


def _image_exists(image_id: str) -> bool:
    inspect = ["docker", "image", "inspect", image_id]
    return subprocess.run(inspect, capture_output=True).returncode == 0


@pytest.fixture(scope="module")
def role_image_record(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The pipeline's role image when `snakemake roleml_image` made one here; otherwise built the
    same way (node image, reused when the daemon has it, then the role image FROM it)."""
    _docker_or_skip()
    if ROLE_IMAGE.is_file():
        record: dict[str, str] = json.loads(ROLE_IMAGE.read_text())
        if _image_exists(record["image_id"]):
            return record
    from reprise.testbed.image import build_node_image
    from reprise.testbed.systems.roleml.image import build_role_image

    work = tmp_path_factory.mktemp("roleml-image")
    node = work / "node.json"
    build_node_image(workdir=work, log=work / "node.log", record=node, tag="reprise-node:test")
    built = build_role_image(
        node, REPO / "requirements.lock", work / "roleml.json", "reprise-roleml:test"
    )
    return {"image_id": built["image_id"], "tag": built["tag"]}


@pytest.mark.slow
def test_container_offloads_with_a_failed_restore_and_nothing_left(
    tmp_path: Path, role_image_record: dict[str, str]
) -> None:
    _docker_or_skip()
    from reprise.testbed.systems.roleml.study import RoleImage

    image = RoleImage(role_image_record["image_id"], role_image_record["tag"], DOCKER_ROOT)
    staged_before = set(Path("/tmp").glob(STAGED_CHECKPOINTS))
    containers = DOCKER_ROOT / "containers"
    before = set(containers.iterdir()) if containers.is_dir() else set()
    done: list[str] = []
    settings = small_settings("docker", num_rounds=18)
    # the first move's restore is made to fail, the same move again succeeds
    settings["commanded"] = settings["commanded"] * 2
    summary, offloads, run = run_with_fault(
        tmp_path, settings, corrupt_first_restore(done), image=image
    )
    failed, moved, automatic = offloads
    assert done == ["node4"]
    assert failed["status"] == "offload-failed" and failed["node_after"] == "node3"
    assert "restore of client3 on node node4 failed" in failed["reason"]
    assert moved["status"] == "offloaded" and moved["node_after"] == "node4"
    assert automatic["trigger"] == "automatic" and automatic["status"] == "offloaded"
    # every move kept the trainer's state: its epoch counter went on by one epoch
    assert all(int(r["epoch_after"]) == int(r["epoch_before"]) + 1 for r in offloads)
    assert summary["runtime"] == "docker" and summary["rounds"] == 18
    run_id = summary["run_id"]
    assert leftovers(run) == []
    assert _bridges(run_id) == [] and _rules(run_id) == []
    assert (set(containers.iterdir()) if containers.is_dir() else set()) == before
    # containerd's staging copies of the three checkpoints went with the daemon's state
    assert set(Path("/tmp").glob(STAGED_CHECKPOINTS)) == staged_before
