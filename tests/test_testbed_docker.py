"""The node image and the docker provider, against the real Docker daemon (start-dockerd.sh)."""

from __future__ import annotations

import io
import json
import re
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from infra.docker_daemon import daemon_answers

docker = pytest.importorskip(
    "docker", reason="the testbed extra is not installed (pip install -e .[testbed])"
)

from reprise.errors import ProvisionError  # noqa: E402
from reprise.testbed.image import (  # noqa: E402
    DEBIAN_BASE_TAG,
    _Log,
    build_image,
    build_node_image,
    ensure_base,
)
from reprise.testbed.inventory import load_inventory  # noqa: E402
from reprise.testbed.nodes import Node  # noqa: E402
from reprise.testbed.provision.docker import (  # noqa: E402
    LABEL_RUN,
    DockerProvider,
    memory_bytes,
)

IMAGE_TAG = "reprise-node:test"


needs_daemon = pytest.mark.skipif(
    not daemon_answers(),
    reason="no Docker daemon answers (start one as root: bash tests/infra/start-dockerd.sh)",
)
pytestmark = pytest.mark.docker


@pytest.fixture(scope="session")
def client() -> Any:
    return docker.from_env(timeout=600)


@pytest.fixture(scope="session")
def node_image(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The project's node image, built (or found up to date) once per session; its record."""
    work = tmp_path_factory.mktemp("image")
    record = work / "image.json"
    build_node_image(workdir=work, log=work / "build.log", record=record, tag=IMAGE_TAG)
    data: dict[str, Any] = json.loads(record.read_text())
    data["context"] = str(work / "context")
    data["base_ref"] = DEBIAN_BASE_TAG
    return data


def write_inventory(folder: Path, groups: list[dict[str, Any]], **docker_keys: Any) -> Path:
    """An inventory whose cluster name (the file stem) is unique, so runs never collide."""
    path = folder / f"t{uuid.uuid4().hex[:8]}.yaml"
    doc = {
        "provider": "docker",
        "python": "/opt/venv/bin/python",
        "docker": {"image": IMAGE_TAG, "groups": groups, **docker_keys},
    }
    path.write_text(yaml.safe_dump(doc))
    return path


THREE = [{"group": "default", "count": 3, "cpus": 0.5, "memory": "512m", "slots": 2}]


def ssh(
    node: Node, command: str, known_hosts: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """OpenSSH's own client, strict host-key checking against the provider's known_hosts."""
    return subprocess.run(
        [
            "ssh",
            "-o", "BatchMode=yes",
            "-o", "StrictHostKeyChecking=yes",
            "-o", f"UserKnownHostsFile={known_hosts or node.known_hosts}",
            "-o", "GlobalKnownHostsFile=/dev/null",
            "-o", "ConnectTimeout=10",
            "-i", str(node.key_path),
            "-p", str(node.port),
            f"{node.user}@{node.address}",
            command,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip


def leftovers(client: Any, run: str) -> tuple[list[Any], list[Any]]:
    label = {"label": f"{LABEL_RUN}={run}"}
    return client.containers.list(all=True, filters=label), client.networks.list(filters=label)


@pytest.fixture(scope="module")
def cluster(
    node_image: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[DockerProvider, list[Node]]]:
    folder = tmp_path_factory.mktemp("cluster")
    provider = DockerProvider(load_inventory(write_inventory(folder, THREE)), folder / "state")
    try:
        yield provider, provider.provision()
    finally:
        provider.teardown()


# -- no daemon needed -------------------------------------------------------------------


def test_memory_limits_read_like_docker_and_kubernetes() -> None:
    assert memory_bytes("512m") == 512 * 2**20
    assert memory_bytes("2g") == memory_bytes("2Gi") == memory_bytes("2G") == 2 * 2**30
    assert memory_bytes("1.5g") == int(1.5 * 2**30)
    assert memory_bytes("4096") == 4096
    with pytest.raises(ValueError, match="not a memory size"):
        memory_bytes("two gigs")


def test_no_daemon_is_a_clear_error_and_creates_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dead = tmp_path / "dead.sock"
    monkeypatch.setenv("DOCKER_HOST", f"unix://{dead}")
    provider = DockerProvider(load_inventory(write_inventory(tmp_path, THREE)), tmp_path / "state")
    with pytest.raises(ProvisionError) as err:
        provider.provision()
    message = str(err.value)
    assert f"unix://{dead}" in message
    assert "start-dockerd.sh" in message and "DOCKER_HOST" in message
    assert not (tmp_path / "state" / "created.json").exists()


def test_interrupted_build_step_stops_its_whole_process_group(tmp_path: Path) -> None:
    """Ctrl-C during debootstrap or pip: the step's children go too, not only the shell."""

    class Interrupting(io.StringIO):
        name = str(tmp_path / "build.log")

        def write(self, text: str) -> int:
            if "2-ready" in text:  # printed by the step, not in its command line
                raise KeyboardInterrupt
            return super().write(text)

    pid_file = tmp_path / "child.pid"
    script = f"sleep 300 & echo $! > {pid_file}; echo $((1 + 1))-ready; wait"
    with pytest.raises(KeyboardInterrupt):
        _Log(Interrupting()).run(["bash", "-c", script], "a build step")
    child = int(pid_file.read_text())
    state = Path(f"/proc/{child}/status")
    deadline = time.monotonic() + 10  # signals land asynchronously
    while state.exists() and "zombie" not in state.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not state.exists() or "zombie" in state.read_text(), f"sleep ({child}) outlived the step"


# -- the node image ---------------------------------------------------------------------


@needs_daemon
@pytest.mark.slow
def test_node_image_has_the_locked_environment_and_no_baked_keys(
    node_image: dict[str, Any], client: Any
) -> None:
    image = client.images.get(IMAGE_TAG)
    assert image.id == node_image["image_id"]
    assert node_image["base"] == "debian-bootstrap" and node_image["size_bytes"] > 0
    wheels = {w["file"]: w for w in node_image["wheels"]}
    assert "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl" in wheels
    assert any(f.startswith("reprise-0.1.0-") for f in wheels)
    assert all(re.fullmatch(r"[0-9a-f]{64}", w["sha256"]) for w in wheels.values())
    script = (
        "/opt/venv/bin/python -c 'import sys, torch, fabric, docker, reprise.testbed.nodes; "
        "print(sys.version_info[:2], torch.__version__)'; "
        "tc -V; iperf3 --version | head -1; ps --version; "
        "ls /etc/ssh/ssh_host_* 2>/dev/null | wc -l; /opt/venv/bin/pip check"
    )
    out = client.containers.run(
        IMAGE_TAG, ["-c", script], entrypoint=["/bin/sh"], remove=True, network_mode="none"
    ).decode()
    lines = out.strip().splitlines()
    assert lines[0] == "(3, 11) 2.13.0+cpu"
    assert lines[1].startswith("tc utility") and lines[2].startswith("iperf 3")
    assert "procps" in lines[3]
    assert lines[4] == "0", "the image must not carry SSH host keys: each node gets its own"
    assert lines[5] == "No broken requirements found."


@needs_daemon
@pytest.mark.slow
def test_image_with_unchanged_inputs_is_reused(node_image: dict[str, Any], client: Any) -> None:
    context = Path(node_image["context"])
    log = context.parent / "again.log"
    with log.open("w") as handle:
        image_id, built = build_image(
            client, context, "reprise-node:test-again", node_image["base_ref"],
            node_image["base_image_id"], handle,
        )  # fmt: skip
    try:
        assert (image_id, built) == (node_image["image_id"], False)
        assert "reprise-node:test-again" in client.images.get(image_id).tags
        assert "nothing to build" in log.read_text()
    finally:
        client.images.remove("reprise-node:test-again")  # the tag only; the image keeps its other


@needs_daemon
def test_unpullable_base_names_the_offline_alternative(client: Any) -> None:
    # .invalid never resolves (RFC 6761), wherever the test runs
    with pytest.raises(ProvisionError, match=r"could not be pulled.*'debian-bootstrap'"):
        ensure_base(client, "registry.invalid/reprise/python:3.11-slim", io.StringIO())


# -- the provider -----------------------------------------------------------------------


@needs_daemon
def test_three_nodes_answer_ssh_with_their_generated_host_keys(
    cluster: tuple[DockerProvider, list[Node]], tmp_path: Path
) -> None:
    provider, nodes = cluster
    assert [n.name for n in nodes] == [f"{provider.inventory.name}-default-{i}" for i in range(3)]
    assert len({n.address for n in nodes}) == 3
    for node in nodes:
        assert node.peer_address == node.address and node.user == "root"
        assert node.slots == 2 and node.gpus == 0 and node.python == "/opt/venv/bin/python"
        done = ssh(node, f"hostname && {node.python} -c 'import reprise, torch'")
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == node.name
    # the check is real: a known_hosts that names another key for the node is refused
    other = provider.ssh_dir / "hosts" / nodes[1].name / "ssh_host_ed25519_key.pub"
    forged = tmp_path / "known_hosts"
    forged.write_text(f"{nodes[0].address} {' '.join(other.read_text().split()[:2])}\n")
    refused = ssh(nodes[0], "true", known_hosts=forged)
    assert refused.returncode != 0
    assert "host key" in refused.stderr.lower()


@needs_daemon
def test_nodes_reach_each_other_and_have_their_limits(
    cluster: tuple[DockerProvider, list[Node]], client: Any
) -> None:
    provider, nodes = cluster
    peers = " ".join(n.peer_address for n in nodes[1:])
    connect = "import socket, sys; socket.create_connection((sys.argv[1], 22), 5); print('ok')"
    probe = f'for p in {peers}; do {nodes[0].python} -c "{connect}" $p; done'
    done = ssh(nodes[0], probe)
    assert done.stdout.split() == ["ok", "ok"], done.stderr
    # tc works inside a node (NET_ADMIN), which link shaping needs
    tbf = "tc qdisc add dev eth0 root tbf rate 50mbit burst 32kbit latency 50ms"
    done = ssh(nodes[1], f"{tbf} && tc qdisc show dev eth0 && tc qdisc del dev eth0 root")
    assert done.returncode == 0 and "tbf" in done.stdout, done.stderr
    container = client.containers.get(nodes[2].labels["container"])
    host = container.attrs["HostConfig"]
    assert host["NanoCpus"] == 500_000_000 and host["Memory"] == 512 * 2**20
    assert container.labels["reprise.cluster"] == provider.inventory.name


@needs_daemon
def test_teardown_leaves_no_container_or_network(
    node_image: dict[str, Any], client: Any, tmp_path: Path
) -> None:
    provider = DockerProvider(load_inventory(write_inventory(tmp_path, THREE)), tmp_path / "s")
    nodes = provider.provision()
    run = nodes[0].labels["run"]
    containers, networks = leftovers(client, run)
    assert len(containers) == 3 and len(networks) == 1
    provider.teardown()
    assert leftovers(client, run) == ([], [])
    assert not (tmp_path / "s" / "created.json").exists()
    provider.teardown()  # idempotent


@needs_daemon
def test_teardown_after_a_crash_reads_created_json(
    node_image: dict[str, Any], client: Any, tmp_path: Path
) -> None:
    inventory = load_inventory(write_inventory(tmp_path, THREE))
    crashed = DockerProvider(inventory, tmp_path / "s")
    nodes = crashed.provision()
    run = nodes[0].labels["run"]
    record = json.loads((tmp_path / "s" / "created.json").read_text())
    assert record["run"] == run and len(record["containers"]) == 3
    # an object made in the instant before the crash, its id never recorded: the label finds it
    network = record["network"]["name"]
    stray = client.containers.create(
        IMAGE_TAG, entrypoint=["sleep", "600"], labels={LABEL_RUN: run}, network=network
    )
    # a new process (the rerun) knows only the state folder
    rerun = DockerProvider(inventory, tmp_path / "s")
    fresh = rerun.provision()
    assert leftovers(client, run) == ([], [])
    with pytest.raises(docker.errors.NotFound):
        client.containers.get(stray.id)
    assert [n.name for n in fresh] == [n.name for n in nodes]
    assert ssh(fresh[0], "true").returncode == 0, "the new known_hosts holds the new host keys"
    DockerProvider(inventory, tmp_path / "s").teardown()
    assert leftovers(client, fresh[0].labels["run"]) == ([], [])


@needs_daemon
def test_interrupted_provisioning_removes_what_it_made(
    node_image: dict[str, Any], client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    provider = DockerProvider(load_inventory(write_inventory(tmp_path, THREE)), tmp_path / "s")

    def ctrl_c(*_: object) -> None:
        runs.append(json.loads((tmp_path / "s" / "created.json").read_text())["run"])
        raise KeyboardInterrupt

    runs: list[str] = []
    monkeypatch.setattr(provider, "_wait_ssh", ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        provider.provision()
    assert runs and leftovers(client, runs[0]) == ([], [])
    assert not (tmp_path / "s" / "created.json").exists()


@needs_daemon
def test_missing_image_names_the_rule_that_builds_it(client: Any, tmp_path: Path) -> None:
    path = write_inventory(tmp_path, THREE, image="reprise-node:no-such-tag")
    provider = DockerProvider(load_inventory(path), tmp_path / "s")
    with pytest.raises(ProvisionError, match=r"reprise-node:no-such-tag.*snakemake node_image"):
        provider.provision()
    assert client.networks.list(names=[f"reprise-{path.stem}"]) == []
    assert not (tmp_path / "s" / "created.json").exists()


@needs_daemon
def test_taken_subnet_is_named_and_nothing_is_left(
    node_image: dict[str, Any], client: Any, tmp_path: Path
) -> None:
    ipam = docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet="10.231.250.0/24")])
    squatter = client.networks.create(f"squat-{uuid.uuid4().hex[:6]}", ipam=ipam)
    try:
        path = write_inventory(tmp_path, THREE, subnet="10.231.250.0/24")
        provider = DockerProvider(load_inventory(path), tmp_path / "s")
        with pytest.raises(ProvisionError) as err:
            provider.provision()
        assert "10.231.250.0/24 is taken" in str(err.value)
        assert squatter.name in str(err.value) and path.name in str(err.value)
        cluster = {"label": f"reprise.cluster={path.stem}"}
        assert client.containers.list(all=True, filters=cluster) == []
        assert client.networks.list(filters=cluster) == []
    finally:
        squatter.remove()


@needs_daemon
def test_gpu_group_without_nvidia_runtime_is_refused_before_anything_starts(
    node_image: dict[str, Any], client: Any, tmp_path: Path
) -> None:
    if "nvidia" in client.info().get("Runtimes", {}):
        pytest.skip("this Docker daemon has an NVIDIA runtime")
    groups = [{"group": "gpu", "count": 1, "gpus": 1}]
    path = write_inventory(tmp_path, groups)
    with pytest.raises(
        ProvisionError, match=r"group\(s\) gpu ask for GPUs.*NVIDIA Container Toolkit"
    ):
        DockerProvider(load_inventory(path), tmp_path / "s").provision()
    assert client.networks.list(filters={"label": f"reprise.cluster={path.stem}"}) == []
