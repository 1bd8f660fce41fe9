"""Nodes of one host for role offloading: a cgroup (v1 cpu + cpuacct) per node, so each node has its
own CPU limit and its own CPU reading, and a node can disappear."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterable
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

from reprise.errors import ProvisionError, TestbedError

CGROUP_ROOT = Path("/sys/fs/cgroup")
CONTROLLERS = ("cpu", "cpuacct")
PERIOD_US = 100_000


@dataclass
class CgroupNodes:
    """The nodes of one run under `<controller>/reprise-roleml/<run_id>/<node>`."""

    run_id: str
    names: tuple[str, ...]
    cpu_limit: float  # cores each node may use
    root: Path = CGROUP_ROOT
    down: set[str] = field(default_factory=set)

    def base(self, controller: str) -> Path:
        return self.root / controller / "reprise-roleml" / self.run_id

    def cgroups(self, node: str) -> list[Path]:
        if node not in self.names:
            raise TestbedError(f"unknown node {node!r}; the run's nodes are {list(self.names)}")
        return [self.base(c) / node for c in CONTROLLERS]

    def cgroup_parent(self, node: str) -> str:
        """The node's cgroup as Docker's `--cgroup-parent` (cgroupfs driver): a container's
        cgroups sit under the node's in every hierarchy, so its CPU counts to the node."""
        self.cgroups(node)  # names the node when unknown
        return f"/reprise-roleml/{self.run_id}/{node}"

    def _hierarchies(self) -> list[Path]:
        """Every hierarchy with this run's directory: runc makes the node's path in all of them
        (memory, pids, ...) when a container is created under it."""
        return sorted(
            h for h in self.root.iterdir() if (h / "reprise-roleml" / self.run_id).is_dir()
        )

    def create(self) -> None:
        for controller in CONTROLLERS:
            if not (self.root / controller).is_dir():
                raise ProvisionError(
                    f"{self.root / controller}: no cgroup v1 {controller} hierarchy; role "
                    "offloading on one host needs it to give each node its own CPU picture"
                )
        try:
            for controller in CONTROLLERS:
                self.base(controller).mkdir(parents=True, exist_ok=True)
            # the run weighs against the host's other work as eight busy processes per core its
            # nodes have (not as one, a cgroup's default weight): a node's CPU reading is then its
            # own load, not the host's. With the weight of one process per core, a stressed node
            # read 58-66% of its limit at load 13-30 (85-100% on a quiet host) and the Decider
            # never fired. The nodes' quotas still cap what the run takes.
            shares = max(2, round(8 * 1024 * self.cpu_limit * len(self.names)))
            (self.base("cpu") / "cpu.shares").write_text(f"{shares}\n")
            for node in self.names:
                for path in self.cgroups(node):
                    path.mkdir(parents=True, exist_ok=True)
                quota = self.base("cpu") / node / "cpu.cfs_quota_us"
                quota.write_text(f"{round(self.cpu_limit * PERIOD_US)}\n")
        except OSError as exc:
            raise ProvisionError(
                f"cannot create the node cgroups under {self.base('cpu')} ({exc}); role "
                "offloading needs root"
            ) from exc

    def alive(self, node: str) -> bool:
        return node not in self.down and all(p.is_dir() for p in self.cgroups(node))

    def usage_ns(self, node: str) -> int:
        return int((self.base("cpuacct") / node / "cpuacct.usage").read_text())

    def pids(self, node: str) -> list[int]:
        path = self.base("cpuacct") / node / "cgroup.procs"
        with suppress(FileNotFoundError):
            return [int(p) for p in path.read_text().split()]
        return []

    def take_down(self, node: str, owned: Iterable[int]) -> None:
        """A node disappears: the processes this run started there are killed, its cgroups go."""
        self.down.add(node)
        for pid in owned:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self._remove(node)

    def _stragglers(self, node: str) -> list[int]:
        """PIDs still in the node's cgroups (the node's own and a container's below it)."""
        found: set[int] = set()
        for hierarchy in self._hierarchies():
            top = hierarchy / "reprise-roleml" / self.run_id / node
            for procs in top.glob("**/cgroup.procs"):
                with suppress(OSError):
                    found.update(int(p) for p in procs.read_text().split())
        return sorted(found)

    def _remove(self, node: str) -> None:
        started = time.monotonic()
        killed = False
        for hierarchy in self._hierarchies():
            top = hierarchy / "reprise-roleml" / self.run_id / node
            # deepest first: a container's own cgroup under the node's
            for path in sorted(top.glob("**/"), key=lambda p: len(p.parts), reverse=True):
                while path.is_dir():
                    try:
                        path.rmdir()
                    except OSError:
                        # tasks leave a cgroup a moment after SIGKILL
                        waited = time.monotonic() - started
                        if waited > 10:
                            raise TestbedError(
                                f"node {node}: cgroup {path} still holds {self._stragglers(node)}"
                            ) from None
                        if waited > 2 and not killed:
                            self._kill_stragglers(node)
                            killed = True
                        time.sleep(0.05)

    def _kill_stragglers(self, node: str) -> None:
        """Processes are stopped by the PIDs their starters recorded. One still in the node's
        cgroup seconds later was missed (a bug). It runs in a cgroup this run made, so it is
        this run's: it is killed and named, not left running with its cgroup kept."""
        stragglers = self._stragglers(node)
        for pid in stragglers:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if stragglers:
            print(
                f"reprise: node {node}: killed {stragglers}, still in its cgroup after every "
                "recorded process was stopped",
                file=sys.stderr,
            )

    def remove_all(self) -> None:
        """Remove every node cgroup (their processes must have been stopped by PID first; one
        that was missed is killed and named)."""
        for node in self.names:
            self._remove(node)
        for hierarchy in self._hierarchies():
            with suppress(FileNotFoundError, OSError):
                (hierarchy / "reprise-roleml" / self.run_id).rmdir()
                # the common parent goes with the last run (another run's keeps it)
                (hierarchy / "reprise-roleml").rmdir()


class CpuWatch:
    """Per-node CPU use between two readings, in percent of the node's limit."""

    def __init__(self, nodes: CgroupNodes) -> None:
        self.nodes = nodes
        self.last: dict[str, tuple[float, int]] = {}

    def sample(self) -> dict[str, float]:
        now = time.monotonic()
        out: dict[str, float] = {}
        for node in self.nodes.names:
            if not self.nodes.alive(node):
                continue
            used = self.nodes.usage_ns(node)
            if node in self.last:
                then, before = self.last[node]
                seconds = max(now - then, 1e-6)
                out[node] = 100.0 * (used - before) / 1e9 / seconds / self.nodes.cpu_limit
            self.last[node] = (now, used)
        return out
