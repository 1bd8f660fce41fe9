"""Docker provider: nodes as containers of the node image on a bridge network, reached over SSH."""

from __future__ import annotations

import io
import ipaddress
import json
import logging
import os
import re
import shutil
import tarfile
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker  # type: ignore[import-untyped]
import docker.errors  # type: ignore[import-untyped]
import docker.types  # type: ignore[import-untyped]
import paramiko  # type: ignore[import-untyped]
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from reprise.errors import ProvisionError
from reprise.testbed.inventory import DockerSettings, Inventory, SizedGroup
from reprise.testbed.nodes import Node

log = logging.getLogger(__name__)

DEFAULT_SOCKET = "unix:///var/run/docker.sock"
# The rule that builds the node image (rules/provision.smk), named in the missing-image error.
IMAGE_RULE = "node_image"
# The interpreter of the node image's venv (workflow/testbed/node/Dockerfile).
NODE_PYTHON = "/opt/venv/bin/python"
# Where the entry point finds the keys this provider copies in before start.
KEY_DROP = "etc/reprise/ssh"
LABEL_CLUSTER = "reprise.cluster"
LABEL_RUN = "reprise.run"


def daemon_address() -> str:
    return os.environ.get("DOCKER_HOST") or DEFAULT_SOCKET


def connect(timeout: float = 60.0) -> Any:
    """A client of the Docker daemon that answers, or a ProvisionError saying how to start one."""
    try:
        client = docker.from_env(timeout=int(timeout))
        client.ping()
    except docker.errors.DockerException as exc:
        raise ProvisionError(
            f"no Docker daemon answers at {daemon_address()} ({_short(exc)}); start one as root "
            "with `bash tests/infra/start-dockerd.sh` (or `systemctl start docker`), or point "
            "DOCKER_HOST at a running daemon"
        ) from None
    return client


def _short(exc: BaseException) -> str:
    text = str(getattr(exc, "explanation", None) or exc)
    return text if len(text) <= 300 else text[:297] + "..."


def memory_bytes(value: str) -> int:
    """'512m', '2g', '2Gi', '1.5G' or a plain byte count, as Docker counts them (1g = 2**30)."""
    match = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)([kmgKMG]?)i?[bB]?", value.strip())
    if match is None:
        raise ValueError(f"not a memory size: {value!r}")
    number, unit = match.groups()
    scale = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[unit.lower()]
    return int(float(number) * scale)


@dataclass(frozen=True)
class KeyPair:
    private: Path
    public_line: str


def _keypair(path: Path, comment: str) -> KeyPair:
    """A fresh ed25519 key in OpenSSH format: private key at `path` (0600), public at `path`.pub."""
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(private)
    line = f"{public.decode()} {comment}"
    path.with_name(path.name + ".pub").write_text(line + "\n")
    return KeyPair(private=path, public_line=line)


def _key_archive(host_key: KeyPair, authorized: str) -> bytes:
    """A tar of the drop folder the node's entry point installs from (root-owned, private)."""
    buffer = io.BytesIO()
    files = {
        "ssh_host_ed25519_key": (host_key.private.read_bytes(), 0o600),
        "ssh_host_ed25519_key.pub": ((host_key.public_line + "\n").encode(), 0o644),
        "authorized_keys": ((authorized + "\n").encode(), 0o600),
    }
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        parts = KEY_DROP.split("/")
        for depth in range(1, len(parts) + 1):
            info = tarfile.TarInfo("/".join(parts[:depth]))
            info.type, info.mode = tarfile.DIRTYPE, 0o700 if depth == len(parts) else 0o755
            tar.addfile(info)
        for name, (data, mode) in files.items():
            info = tarfile.TarInfo(f"{KEY_DROP}/{name}")
            info.size, info.mode = len(data), mode
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@dataclass(frozen=True)
class _Planned:
    name: str
    group: SizedGroup
    group_index: int


class _Record:
    """state_dir/created.json: the run id and every object made, written before it is relied on."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> dict[str, Any] | None:
        if not self.path.is_file():
            return None
        try:
            data: dict[str, Any] = json.loads(self.path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ProvisionError(
                f"{self.path} is unreadable ({exc}); it lists the containers and network of an "
                f"earlier run: remove them by its label (docker ps -a --filter label={LABEL_RUN}) "
                "and delete the file"
            ) from None
        return data

    def write(self, data: Mapping[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        with tmp.open("w") as handle:
            json.dump(data, handle, indent=2)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        tmp.replace(self.path)

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


class DockerProvider:
    """Makes the nodes of a `provider: docker` inventory; teardown removes exactly what it made."""

    def __init__(
        self, inventory: Inventory, state_dir: Path, *, ready_timeout_s: float = 120.0
    ) -> None:
        if inventory.docker is None:
            raise ProvisionError(f"{inventory.path}: provider docker needs a `docker:` section")
        self.inventory = inventory
        self.settings: DockerSettings = inventory.docker
        self.state_dir = Path(state_dir)
        self.ssh_dir = self.state_dir / "ssh"
        self.known_hosts = self.ssh_dir / "known_hosts"
        self.client_key = self.ssh_dir / "id_ed25519"
        self.record = _Record(self.state_dir / "created.json")
        self.ready_timeout_s = ready_timeout_s
        self._client: Any = None
        # seconds of the last provision(): network + containers started, then all sshd answering
        self.timings: dict[str, float] = {}

    # -- public -------------------------------------------------------------------------

    def provision(self) -> list[Node]:
        client = self._docker()
        if self.record.read() is not None:
            log.warning("%s: tearing down what an earlier run left", self.record.path)
            self.teardown()
        plan = self._plan()
        self._check_image(client)
        self._check_gpus(client, plan)
        self._check_names_free(client, plan)
        run = uuid.uuid4().hex
        state: dict[str, Any] = {
            "cluster": self.inventory.name,
            "run": run,
            "daemon": daemon_address(),
            "network": None,
            "containers": [],
        }
        # The run id goes to disk before anything exists: an object made just before a crash
        # (its id never written) still carries the run's label, and teardown removes by both.
        self.record.write(state)
        try:
            return self._provision(client, plan, state)
        except BaseException:
            try:
                self.teardown()
            except ProvisionError as exc:
                log.error("teardown after a failed provisioning also failed: %s", exc)
            raise

    def teardown(self) -> None:
        """Remove the recorded containers and network (also those of a crashed earlier run)."""
        state = self.record.read()
        if state is None:
            return
        client = self._docker()
        labels = f"{LABEL_RUN}={state['run']}"
        containers = {c["id"]: c["name"] for c in state.get("containers", [])}
        for found in client.containers.list(all=True, filters={"label": labels}):
            containers.setdefault(found.id, found.name)
        networks = (
            {state["network"]["id"]: state["network"]["name"]} if state.get("network") else {}
        )
        for found in client.networks.list(filters={"label": labels}):
            networks.setdefault(found.id, found.name)
        # containers first: a network with endpoints cannot be removed
        for oid, name in containers.items():
            self._remove(client.containers, oid, f"container {name}", force=True)
        for oid, name in networks.items():
            self._remove(client.networks, oid, f"network {name}")
        self.record.remove()

    def _remove(self, collection: Any, oid: str, what: str, **options: Any) -> None:
        try:
            collection.get(oid).remove(**options)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:
            raise ProvisionError(
                f"could not remove {what} ({oid[:12]}): {_short(exc)}; {self.record.path} "
                "still lists it: run teardown again once the cause is fixed"
            ) from None

    # -- provisioning steps -------------------------------------------------------------

    def _docker(self) -> Any:
        if self._client is None:
            self._client = connect()
        return self._client

    def _plan(self) -> list[_Planned]:
        return [
            _Planned(f"{self.inventory.name}-{group.group}-{i}", group, gi)
            for gi, group in enumerate(self.settings.groups)
            for i in range(group.count)
        ]

    def _check_image(self, client: Any) -> None:
        try:
            client.images.get(self.settings.image)
        except docker.errors.ImageNotFound:
            raise ProvisionError(
                f"{self.inventory.path}: docker.image {self.settings.image!r} is not on the Docker "
                f"daemon at {daemon_address()}; build it with `snakemake {IMAGE_RULE}` (rule "
                f"{IMAGE_RULE} in rules/provision.smk builds the project's node image)"
            ) from None

    def _check_gpus(self, client: Any, plan: list[_Planned]) -> None:
        wanting = sorted({p.group.group for p in plan if p.group.gpus > 0})
        if not wanting:
            return
        runtimes = sorted(client.info().get("Runtimes", {}))
        # dockerd serves GPU device requests when it sees the toolkit's hook or an nvidia runtime
        if "nvidia" in runtimes or shutil.which("nvidia-container-runtime-hook"):
            return
        raise ProvisionError(
            f"{self.inventory.path}: node group(s) {', '.join(wanting)} ask for GPUs, but the "
            f"Docker daemon at {daemon_address()} has no NVIDIA runtime (runtimes: "
            f"{', '.join(runtimes) or 'none'}); install the NVIDIA Container Toolkit and run "
            "`nvidia-ctk runtime configure --runtime=docker`, or set gpus: 0"
        )

    def _check_names_free(self, client: Any, plan: list[_Planned]) -> None:
        for name in [self.settings.network] + [p.name for p in plan]:
            found = [n for n in client.networks.list(names=[name]) if n.name == name]
            kind = "network"
            if not found and name != self.settings.network:
                found = [c for c in client.containers.list(all=True, filters={"name": name})]
                found = [c for c in found if c.name == name]
                kind = "container"
            if not found:
                continue
            labels = (
                found[0].attrs.get("Labels") or found[0].attrs.get("Config", {}).get("Labels") or {}
            )
            owner = labels.get(LABEL_CLUSTER)
            if owner is not None:
                hint = (
                    f"it is labelled {LABEL_CLUSTER}={owner} {LABEL_RUN}={labels.get(LABEL_RUN)}, "
                    f"left by an earlier run whose record {self.record.path} is gone; remove it "
                    f"(docker rm -f / docker network rm {name})"
                )
            else:
                hint = f"it is not ours: remove it, or rename the network in {self.inventory.path}"
            raise ProvisionError(f"a Docker {kind} named {name!r} already exists; {hint}")

    def _provision(self, client: Any, plan: list[_Planned], state: dict[str, Any]) -> list[Node]:
        t0 = time.monotonic()
        labels = {LABEL_CLUSTER: self.inventory.name, LABEL_RUN: state["run"]}
        network = self._create_network(client, labels)
        state["network"] = {"id": network.id, "name": network.name}
        self.record.write(state)

        client_key = _keypair(self.client_key, f"reprise-controller@{self.inventory.name}")
        started: list[tuple[_Planned, Any, KeyPair]] = []
        for planned in plan:
            host_key = _keypair(
                self.ssh_dir / "hosts" / planned.name / "ssh_host_ed25519_key", planned.name
            )
            container = self._create_container(client, planned, network, labels)
            state["containers"].append({"id": container.id, "name": planned.name})
            self.record.write(state)
            container.put_archive("/", _key_archive(host_key, client_key.public_line))
            self._start(container, planned)
            started.append((planned, container, host_key))

        nodes = []
        for planned, container, _ in started:
            container.reload()
            address = container.attrs["NetworkSettings"]["Networks"][network.name]["IPAddress"]
            nodes.append(self._node(planned, address, container.id, state["run"]))
        self._write_known_hosts(
            {
                node.address: host_key.public_line
                for node, (_, _, host_key) in zip(nodes, started, strict=True)
            }
        )
        t1 = time.monotonic()
        deadline = t1 + self.ready_timeout_s
        for node, (_, container, _) in zip(nodes, started, strict=True):
            self._wait_ssh(node, container, deadline)
        self.timings = {"start_s": t1 - t0, "ssh_ready_s": time.monotonic() - t1}
        return nodes

    def _create_network(self, client: Any, labels: Mapping[str, str]) -> Any:
        ipam = None
        if self.settings.subnet is not None:
            ipam = docker.types.IPAMConfig(
                pool_configs=[docker.types.IPAMPool(subnet=self.settings.subnet)]
            )
        try:
            return client.networks.create(
                self.settings.network, driver="bridge", ipam=ipam, labels=dict(labels)
            )
        except docker.errors.APIError as exc:
            if self.settings.subnet is not None and "overlap" in _short(exc).lower():
                users = self._subnet_users(client, self.settings.subnet)
                raise ProvisionError(
                    f"{self.inventory.path}: docker.subnet {self.settings.subnet} is taken "
                    f"(overlaps {users or 'an existing network'}); choose a free subnet in the "
                    "inventory or remove that network"
                ) from None
            raise ProvisionError(
                f"could not create network {self.settings.network}: {_short(exc)}"
            ) from None

    @staticmethod
    def _subnet_users(client: Any, subnet: str) -> str:
        wanted = ipaddress.ip_network(subnet, strict=False)
        users = []
        for net in client.networks.list():
            for pool in (net.attrs.get("IPAM") or {}).get("Config") or []:
                other = pool.get("Subnet")
                if other and ipaddress.ip_network(other, strict=False).overlaps(wanted):
                    users.append(f"network {net.name} with {other}")
        return ", ".join(users)

    def _create_container(
        self, client: Any, planned: _Planned, network: Any, labels: Mapping[str, str]
    ) -> Any:
        group = planned.group
        options: dict[str, Any] = {
            "name": planned.name,
            "hostname": planned.name,
            "labels": {**labels, "reprise.group": group.group, "reprise.node": planned.name},
            "network": network.name,
            "detach": True,
            # tc (link shaping) inside the node needs it; nothing else is added
            "cap_add": ["NET_ADMIN"],
            # torch's shared-memory tensors outgrow Docker's 64 MB default /dev/shm
            "shm_size": "256m",
        }
        if group.cpus is not None:
            options["nano_cpus"] = int(group.cpus * 1e9)
        if group.memory is not None:
            options["mem_limit"] = memory_bytes(group.memory)
        if group.gpus > 0:
            options["device_requests"] = [
                docker.types.DeviceRequest(count=group.gpus, capabilities=[["gpu"]])
            ]
        try:
            return client.containers.create(self.settings.image, **options)
        except docker.errors.APIError as exc:
            raise ProvisionError(
                f"{self.inventory.path}: docker.groups[{planned.group_index}] "
                f"(group {group.group}): container {planned.name} could not be created: "
                f"{_short(exc)}"
            ) from None

    def _start(self, container: Any, planned: _Planned) -> None:
        try:
            container.start()
        except docker.errors.APIError as exc:
            reason = _short(exc)
            if "device driver" in reason:
                reason += " (no NVIDIA runtime for the GPUs this group asks for)"
            raise ProvisionError(
                f"node {planned.name} (group {planned.group.group}) did not start: {reason}"
            ) from None

    def _node(self, planned: _Planned, address: str, container_id: str, run: str) -> Node:
        # the schema's default interpreter is python3; the node image has its own venv
        python = NODE_PYTHON if self.inventory.python == "python3" else self.inventory.python
        return Node(
            name=planned.name,
            group=planned.group.group,
            address=address,
            peer_address=address,
            port=22,
            user="root",
            key_path=self.client_key,
            known_hosts=self.known_hosts,
            gpus=planned.group.gpus,
            slots=planned.group.slots,
            python=python,
            workdir=self.inventory.workdir,
            labels={"container": container_id[:12], "run": run},
        )

    def _write_known_hosts(self, keys: Mapping[str, str]) -> None:
        """We generated every host key, so we know each node's key before it ever answers."""
        lines = [f"{address} {' '.join(line.split()[:2])}" for address, line in keys.items()]
        self.known_hosts.parent.mkdir(parents=True, exist_ok=True)
        self.known_hosts.write_text("\n".join(lines) + "\n")

    def _wait_ssh(self, node: Node, container: Any, deadline: float) -> None:
        last = "no answer yet"
        while True:
            try:
                with _ssh(node) as ssh:
                    _, stdout, _ = ssh.exec_command("true", timeout=10)
                    if stdout.channel.recv_exit_status() == 0:
                        return
            except paramiko.BadHostKeyException as exc:
                raise ProvisionError(
                    f"node {node.name} ({node.address}) answered with a host key other than the "
                    f"one we generated and wrote to {self.known_hosts}: {exc}; not trusting it"
                ) from None
            except (OSError, paramiko.SSHException, EOFError) as exc:
                last = f"{type(exc).__name__}: {exc}"
            container.reload()
            if container.status not in ("created", "running"):
                tail = container.logs(tail=20).decode(errors="replace").strip()
                raise ProvisionError(
                    f"node {node.name} stopped ({container.status}) before its sshd answered; "
                    f"its log:\n{tail}"
                )
            if time.monotonic() > deadline:
                raise ProvisionError(
                    f"node {node.name} ({node.address}:22) did not answer SSH within "
                    f"{self.ready_timeout_s:.0f} s ({last})"
                )
            time.sleep(0.2)


@contextmanager
def _ssh(node: Node) -> Iterator[Any]:
    """A paramiko connection that trusts only the known_hosts file the provider wrote."""
    client = paramiko.SSHClient()
    try:
        client.load_host_keys(str(node.known_hosts))
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        client.connect(
            node.address,
            port=node.port,
            username=node.user,
            key_filename=str(node.key_path),
            look_for_keys=False,
            allow_agent=False,
            timeout=5,
            banner_timeout=5,
            auth_timeout=5,
        )
        yield client
    finally:
        client.close()
