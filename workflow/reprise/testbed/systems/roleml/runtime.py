"""Where a run's actors live and how one is checkpointed and restored on another node: a container
of the run's experimental dockerd (`docker checkpoint`), or a process in its own PID namespace
(CRIU directly). Both put an actor into its node's cgroup, so the node's CPU reading covers it."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

from reprise.errors import TestbedError
from reprise.testbed.interrupts import interrupts_deferred
from reprise.testbed.systems.roleml import criu
from reprise.testbed.systems.roleml.dockerd import LABEL, ExperimentalDockerd
from reprise.testbed.systems.roleml.local import free_port, wait_listening
from reprise.testbed.systems.roleml.nodes import CgroupNodes

ACTOR_MODULE = ("-u", "-m", "reprise.testbed.systems.roleml.actor")


class ActorRuntime(Protocol):
    """What the study and the Offloading Manager need from the actors' home."""

    kind: str

    def addresses(self, actors: tuple[str, ...]) -> dict[str, str]:
        """gRPC address of each client actor (the conductor's comes from conductor_address)."""
        ...

    def conductor_address(self) -> str: ...

    def seen_as(self, host_path: Path) -> str:
        """`host_path` as the actors see it (data, control files)."""
        ...

    def start(self, actor: str, spec: Mapping[str, Any], node: str, timeout: float) -> None: ...

    def log(self, actor: str) -> Path: ...

    def has(self, actor: str) -> bool: ...

    def checkpoint(self, actor: str, images: Path) -> float:
        """Dump the actor into `images` (it stops); seconds."""
        ...

    def restore(self, actor: str, images: Path, node: str) -> float:
        """Restore the actor from `images` in `node`; seconds."""
        ...

    def image_bytes(self, images: Path, node: str) -> int:
        """Size of the dump in `images` (kept on `node`)."""
        ...

    def ship(self, actor: str, images: Path, shipped: Path, source: str, destination: str) -> int:
        """Copy the dump from `source`'s `images` to `destination`'s `shipped`; bytes sent."""
        ...

    def discard(self, images: Path, node: str) -> None: ...

    def announce(self, actor: str) -> float:
        """Tell the other actors where a restored actor is now; seconds (0: its address stays)."""
        ...

    def stop_all(self) -> None: ...


class OneHostImages:
    """Checkpoint images of runtimes on one host: folders of this machine, addresses that stay."""

    def image_bytes(self, images: Path, node: str) -> int:
        return sum(p.stat().st_size for p in images.rglob("*") if p.is_file())

    def ship(self, actor: str, images: Path, shipped: Path, source: str, destination: str) -> int:
        shutil.copytree(images, shipped)
        return self.image_bytes(shipped, destination)

    def discard(self, images: Path, node: str) -> None:
        shutil.rmtree(images, ignore_errors=True)

    def announce(self, actor: str) -> float:
        return 0.0  # the same address on the destination (a fixed container IP, or 127.0.0.1)


def _spec_file(run_dir: Path, actor: str, spec: Mapping[str, Any]) -> Path:
    path = run_dir / "specs" / f"{actor}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(spec, indent=1))
    return path


@dataclass
class ProcessRuntime(OneHostImages):
    """Actors as host processes, each the init of its own PID namespace (CRIU restores it as a
    new namespace, so its PIDs never clash with the host's)."""

    python: str
    criu_binary: str
    nodes: CgroupNodes
    run_dir: Path
    kind: str = "process"
    procs: dict[str, criu.NamespacedProcess] = field(default_factory=dict)

    def addresses(self, actors: tuple[str, ...]) -> dict[str, str]:
        return {a: f"127.0.0.1:{free_port()}" for a in actors}

    def conductor_address(self) -> str:
        return f"127.0.0.1:{free_port()}"

    def seen_as(self, host_path: Path) -> str:
        return str(host_path)

    def log(self, actor: str) -> Path:
        return self.run_dir / "logs" / f"{actor}.log"

    def has(self, actor: str) -> bool:
        return actor in self.procs

    def start(self, actor: str, spec: Mapping[str, Any], node: str, timeout: float) -> None:
        spec_path = _spec_file(self.run_dir, actor, spec)
        log = self.log(actor)
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text("")
        with interrupts_deferred():  # started and recorded, or neither
            proc = criu.start_namespaced(
                [self.python, *ACTOR_MODULE, str(spec_path), "--detachable"],
                log,
                cgroups=self.nodes.cgroups(node),
            )
            self.procs[actor] = proc
        if proc.outer is not None:
            wait_listening(str(spec["address"]), proc.outer, log, timeout)

    def checkpoint(self, actor: str, images: Path) -> float:
        return criu.checkpoint(self.criu_binary, self.procs[actor], images)

    def restore(self, actor: str, images: Path, node: str) -> float:
        # a restore interrupted half-way would leave a restored actor whose PID is not recorded
        # (CRIU writes the pidfile at its end), so stop_all could not stop it
        with interrupts_deferred():
            self.procs[actor], seconds = criu.restore(
                self.criu_binary, images, self.nodes.cgroups(node)
            )
        return seconds

    def stop_all(self) -> None:
        for proc in self.procs.values():
            proc.kill()


@dataclass
class DockerRuntime(OneHostImages):
    """Actors as containers of the run's experimental dockerd, each under its node's cgroup
    (`--cgroup-parent`) with a fixed address on the run's network; an offload checkpoints the
    container and restores the checkpoint into a new container, under the destination's cgroup,
    that takes over the address."""

    dockerd: ExperimentalDockerd
    image: str
    nodes: CgroupNodes
    run_dir: Path
    data_dir: Path
    control_dir: Path
    kind: str = "docker"
    containers: dict[str, str] = field(default_factory=dict)  # actor -> container id now
    _ips: dict[str, str] = field(default_factory=dict)

    MOUNTS: ClassVar[dict[str, str]] = {
        "data": "/reprise/data",
        "control": "/reprise/control",
        "run": "/reprise/run",
    }

    def addresses(self, actors: tuple[str, ...]) -> dict[str, str]:
        self._ips = {a: self.dockerd.address(i) for i, a in enumerate(actors)}
        return {a: f"{ip}:5000" for a, ip in self._ips.items()}

    def conductor_address(self) -> str:
        return f"{self.dockerd.gateway}:{free_port()}"

    def seen_as(self, host_path: Path) -> str:
        for key, host in (("data", self.data_dir), ("control", self.control_dir)):
            if host_path == host:
                return self.MOUNTS[key]
        raise TestbedError(f"{host_path} is not mounted into the actor containers")

    def log(self, actor: str) -> Path:
        return self.run_dir / "logs" / f"{actor}.log"

    def has(self, actor: str) -> bool:
        return actor in self.containers

    def _create(self, actor: str, node: str) -> str:
        """A container for `actor` under `node`'s cgroup; its command appends to the actor's log
        (a bind-mounted file: CRIU saves the open file by path, the next container has it too)."""
        run = self.MOUNTS["run"]
        created = self.dockerd.docker(
            "create",
            "--label", f"{LABEL}={self.dockerd.run_id}",
            "--cgroup-parent", self.nodes.cgroup_parent(node),
            "--network", self.dockerd.network,
            "--ip", self._ips[actor],
            "--hostname", actor,
            "--entrypoint", "/bin/sh",
            "-v", f"{self.data_dir}:{self.MOUNTS['data']}:ro",
            "-v", f"{self.control_dir}:{self.MOUNTS['control']}",
            "-v", f"{self.run_dir}:{run}",
            self.image,
            "-c", 'exec "$@" >>"$0" 2>&1',
            f"{run}/logs/{actor}.log",
            "/opt/venv/bin/python", *ACTOR_MODULE, f"{run}/specs/{actor}.json", "--detachable",
        )  # fmt: skip
        return created.stdout.strip()

    def start(self, actor: str, spec: Mapping[str, Any], node: str, timeout: float) -> None:
        _spec_file(self.run_dir, actor, spec)
        log = self.log(actor)
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text("")
        self.containers[actor] = self._create(actor, node)
        self.dockerd.docker("start", self.containers[actor])
        self._wait_listening(actor, str(spec["address"]), timeout)

    def _wait_listening(self, actor: str, address: str, timeout: float) -> None:
        import socket

        host, port = address.rsplit(":", 1)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.dockerd.docker(
                "inspect", "-f", "{{.State.Running}}", self.containers[actor], check=False
            )
            if state.stdout.strip() != "true":
                raise TestbedError(
                    f"actor {actor}'s container exited before listening; see {self.log(actor)}"
                )
            with suppress(OSError), socket.create_connection((host, int(port)), timeout=0.5):
                return
            time.sleep(0.3)
        raise TestbedError(f"actor {actor} did not listen within {timeout:.0f}s")

    def checkpoint(self, actor: str, images: Path) -> float:
        """`docker checkpoint create` into `images` (the container exits); the stopped container
        is removed, so the next one can take its address."""
        images.parent.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        for attempt in range(1, 4):
            try:
                self.dockerd.docker(
                    "checkpoint", "create", "--checkpoint-dir", str(images.parent),
                    self.containers[actor], images.name, timeout=300,
                )  # fmt: skip
                break
            except TestbedError as exc:
                # runc gives up freezing a busy container after a while and thaws it again
                # ("unable to freeze", seen at load 25): it runs on, so trying again is safe
                if attempt == 3 or "unable to freeze" not in str(exc):
                    raise
                shutil.rmtree(images, ignore_errors=True)
                time.sleep(2.0)
        seconds = time.monotonic() - started
        self.dockerd.docker("rm", "-f", self.containers.pop(actor))
        return seconds

    def restore(self, actor: str, images: Path, node: str, attempts: int = 3) -> float:
        """A new container under `node`'s cgroup, started from the checkpoint in `images`."""
        started = time.monotonic()
        container = self._create(actor, node)
        self.containers[actor] = container
        name = images.name
        target = self.dockerd.checkpoints(container) / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(images, target)
        try:
            for attempt in range(1, attempts + 1):
                done = self.dockerd.docker(
                    "start", "--checkpoint", name, container, check=False, timeout=300
                )
                if done.returncode == 0:
                    break
                # moby#42900: a checkpoint like one restored moments before can be refused
                # ("content sha256:... already exists") until containerd's GC ran
                if attempt == attempts or "already exists" not in done.stderr:
                    raise TestbedError(
                        f"restore of {actor} on node {node} failed: {done.stderr.strip()[-400:]}"
                    )
                time.sleep(2)
        except TestbedError:
            self.dockerd.docker("rm", "-f", self.containers.pop(actor), check=False)
            raise
        finally:
            shutil.rmtree(target, ignore_errors=True)
        return time.monotonic() - started

    def stop_all(self) -> None:
        ids = list(self.containers.values())
        if ids:
            self.dockerd.docker("rm", "-f", *ids, check=False, timeout=180)
        self.containers.clear()
