"""The contract every provider and launcher shares: a provisioned node and a launched process."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol


@dataclass(frozen=True)
class Node:
    """One machine of a testbed, as the controller reaches it after provisioning.

    `address`/`port` is where the controller's SSH (or srun/pod exec) reaches the node;
    `peer_address` is where other nodes reach it (the torch.distributed master address).
    For Docker nodes both are the container's address on the project's bridge network.
    """

    name: str
    group: str
    address: str
    peer_address: str
    port: int = 22
    user: str = "root"
    key_path: Path | None = None
    known_hosts: Path | None = None
    gpus: int = 0
    slots: int = 1
    python: str = "python3"
    workdir: str = "/tmp/reprise"
    labels: Mapping[str, str] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        data = {k: getattr(self, k) for k in self.__dataclass_fields__}
        data["key_path"] = None if self.key_path is None else str(self.key_path)
        data["known_hosts"] = None if self.known_hosts is None else str(self.known_hosts)
        data["labels"] = dict(self.labels)
        return data


@dataclass(frozen=True)
class Launched:
    """A process started on a node; `pgid` is what stop() signals (never a name)."""

    node: str
    name: str
    pid: int
    pgid: int
    log: str


class Launcher(Protocol):
    """How processes reach nodes: fabric over SSH, srun inside a Slurm allocation, or pods."""

    def start(
        self,
        node: Node,
        name: str,
        argv: Sequence[str],
        env: Mapping[str, str],
        log: str,
    ) -> Launched: ...

    def poll(self, proc: Launched) -> int | None:
        """Exit status once the process ended, None while it runs."""
        ...

    def stop(self, proc: Launched, grace_s: float = 5.0) -> None:
        """SIGTERM the recorded process group, SIGKILL after `grace_s`; idempotent."""
        ...

    def fetch(self, node: Node, remote: str, local: Path) -> None:
        """Copy one file from the node to the controller."""
        ...


class Provider(Protocol):
    """Makes a cluster's nodes ready and removes whatever it made."""

    def provision(self) -> list[Node]: ...

    def teardown(self) -> None: ...


class RunLauncher(Launcher, Protocol):
    """What a TestbedRun needs beyond starting and stopping: nodes added after provisioning,
    log tails for error messages, the PID a wrapper recorded (recovery), and closing."""

    def add_nodes(self, nodes: Sequence[Node]) -> None: ...

    def tail(self, node: Node, log: str, lines: int = 20) -> str: ...

    def recorded_pid(self, node: Node, log: str) -> int | None: ...

    def close(self) -> None: ...
