"""The Offloading Manager (pause, CRIU checkpoint, transfer, restore, resume of one actor's role
process) and the Decider (per-node CPU over a threshold picks a role and a destination)."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from reprise.errors import TestbedError
from reprise.testbed.systems.roleml import criu
from reprise.testbed.systems.roleml.nodes import CgroupNodes
from reprise.testbed.systems.roleml.runtime import ActorRuntime

EPOCH_MARK = "local epoch "


def last_epoch(log: Path) -> int:
    """The trainer's epoch counter as its log last reported it (0 before the first epoch)."""
    epochs = [
        int(line.split(EPOCH_MARK)[1].split()[0])
        for line in log.read_text(errors="replace").splitlines()
        if EPOCH_MARK in line
    ]
    return epochs[-1] if epochs else 0


class OffloadNodes(Protocol):
    """Nodes as the Offloading Manager sees them: cgroups of this host, or whole hosts."""

    names: tuple[str, ...]

    def cgroups(self, node: str) -> list[Path]:
        """The node's cgroups (none for a whole host); names the node when unknown."""
        ...

    def alive(self, node: str) -> bool: ...


class ControlFiles(Protocol):
    """The coordinator's `pause`/`paused` files, wherever its control folder is."""

    def write(self, name: str, text: str) -> None: ...

    def read(self, name: str) -> str | None:
        """The file's text; None when it does not exist."""
        ...

    def remove(self, name: str) -> None: ...


@dataclass
class LocalControl:
    """The control folder on this machine (the coordinator runs here or has it mounted)."""

    folder: Path

    def write(self, name: str, text: str) -> None:
        (self.folder / name).write_text(text)

    def read(self, name: str) -> str | None:
        try:
            return (self.folder / name).read_text()
        except FileNotFoundError:
            return None

    def remove(self, name: str) -> None:
        (self.folder / name).unlink(missing_ok=True)


@dataclass
class Offloader:
    """Moves a running actor (container or process) between nodes; one row per offload."""

    runtime: ActorRuntime
    nodes: OffloadNodes
    run_dir: Path
    control: Path | ControlFiles  # the coordinator's pause/paused files
    roles: dict[str, set[str]]  # actor -> its roles
    placement: dict[str, str]  # actor -> node it runs on now
    timeout: float = 180.0
    # (source, destination, the images shipped there): a test's fault goes in here
    before_restore: Callable[[str, str, Path], None] | None = None
    records: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def files(self) -> ControlFiles:
        return LocalControl(self.control) if isinstance(self.control, Path) else self.control

    def check(self, actor: str, role: str, destination: str) -> str:
        if not self.runtime.has(actor):
            raise TestbedError(f"offload {actor} {role} {destination}: no actor {actor!r} runs")
        if role not in self.roles[actor]:
            raise TestbedError(
                f"offload {actor} {role} {destination}: {actor} runs {sorted(self.roles[actor])}"
            )
        others = self.roles[actor] - {role}
        if others:
            raise TestbedError(
                f"offload {actor} {role} {destination}: the offload moves the whole actor "
                f"(its container or process), which also runs {sorted(others)}; offload an "
                f"actor that runs only {role}"
            )
        self.nodes.cgroups(destination)  # names the node when unknown
        source = self.placement[actor]
        if source == destination:
            raise TestbedError(f"offload {actor} {role} {destination}: {actor} already runs there")
        return source

    def _wait(self, done: Callable[[], bool], what: str) -> float:
        started = time.monotonic()
        while not done():
            if time.monotonic() - started > self.timeout:
                raise TestbedError(f"{what} did not happen within {self.timeout:.0f}s")
            time.sleep(0.02)
        return time.monotonic() - started

    def offload(self, actor: str, role: str, destination: str, trigger: str) -> dict[str, Any]:
        """`offload <actor> <role> <destination>`: pause between rounds, dump, copy, restore,
        resume. A destination gone before the restore gets the role restored at its source."""
        with self.lock:
            source = self.check(actor, role, destination)
            index = len(self.records) + 1
            row: dict[str, Any] = {
                "offload": index,
                "trigger": trigger,
                "actor": actor,
                "role": role,
                "source": source,
                "destination": destination,
                "started": time.time(),
            }
            self.files.write("pause", f"offload {actor} {role} {destination}\n")
            try:
                self._move(row, actor, source, destination)
            finally:
                self.files.remove("pause")
            epochs = row["epoch_before"]
            row["resume_s"] = self._wait(
                lambda: last_epoch(self.runtime.log(actor)) > epochs,
                f"{actor}'s next epoch after resume",
            )
            row["epoch_after"] = last_epoch(self.runtime.log(actor))
            row["finished"] = time.time()
            row["total_s"] = row["finished"] - row["started"]
            self.records.append(row)
            return row

    def _move(self, row: dict[str, Any], actor: str, source: str, destination: str) -> None:
        row["pause_s"] = self._wait(
            lambda: self.files.read("paused") is not None, "the coordinator's pause between rounds"
        )
        row["round_at_pause"] = int((self.files.read("paused") or "").strip() or -1)
        row["epoch_before"] = last_epoch(self.runtime.log(actor))
        name = f"{row['offload']:02d}-{actor}"
        images = self.run_dir / "nodes" / source / "images" / name
        try:
            row["checkpoint_s"] = self.runtime.checkpoint(actor, images)
        except (TestbedError, OSError) as exc:
            # CRIU resumes a tree it could not dump (and Docker thaws a container it could not
            # freeze): the role runs on at its source, and the job goes on
            self.runtime.discard(images, source)
            row["status"], row["node_after"] = "offload-failed", source
            row["reason"] = f"checkpoint failed: {exc}"
            row["contacts_s"] = 0.0
            return
        row["checkpoint_mb"] = self.runtime.image_bytes(images, source) / 1e6
        shipped = self.run_dir / "nodes" / destination / "images" / name
        try:
            started = time.monotonic()
            if not self.nodes.alive(destination):
                raise TestbedError(f"destination node {destination} is gone")
            row["transfer_mb"] = (
                self.runtime.ship(actor, images, shipped, source, destination) / 1e6
            )
            row["transfer_s"] = time.monotonic() - started
            if self.before_restore is not None:
                self.before_restore(source, destination, shipped)
            if not self.nodes.alive(destination):
                raise TestbedError(f"destination node {destination} is gone before the restore")
            row["restore_s"] = self.runtime.restore(actor, shipped, destination)
            row["status"], row["node_after"], row["reason"] = "offloaded", destination, ""
        except (TestbedError, OSError) as exc:
            # the job goes on: the role comes back where it was, from the source's own images
            if not self.nodes.alive(source):
                raise TestbedError(
                    f"offload {actor}: {exc}, and its source node {source} is gone too"
                ) from exc
            row["restore_s"] = self.runtime.restore(actor, images, source)
            row["status"], row["node_after"], row["reason"] = "offload-failed", source, str(exc)
        finally:
            self.runtime.discard(images, source)
            self.runtime.discard(shipped, destination)
        self.placement[actor] = row["node_after"]
        # still paused: the peers know the new address before the next round calls the actor
        row["contacts_s"] = self.runtime.announce(actor)


@dataclass
class Stress:
    """`workers` x `cat /dev/urandom | gzip -9` in one node, stopped by their process group."""

    nodes: CgroupNodes
    node: str
    workers: int = 1
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                *criu.JOIN_CGROUPS,
                "sh",
                "-c",
                'for i in $(seq "$0"); do cat /dev/urandom | gzip -9 >/dev/null & done; wait',
                str(self.workers),
            ],
            env=criu.cgroup_env(self.nodes.cgroups(self.node)),
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.started = time.time()

    def stop(self) -> None:
        if self.proc is not None:
            with suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            self.proc = None


@dataclass
class Decider:
    """Samples every node's CPU each `interval`; when armed and a node's mean over the last
    `window` samples is above `threshold` (RoleML's Decider compares a node's average use with
    its capacity the same way), plans one offload (a movable actor there -> the least loaded
    live worker node) and runs it."""

    offloader: Offloader
    movable: set[str]
    destinations: set[str]  # worker nodes a role may go to (never the conductor's node)
    interval: float
    threshold: float
    window: int
    sample: Callable[[], dict[str, float]]  # node -> CPU % since the previous call
    samples: list[dict[str, Any]] = field(default_factory=list)
    decisions: list[dict[str, Any]] = field(default_factory=list)
    armed: threading.Event = field(default_factory=threading.Event)
    decided: threading.Event = field(default_factory=threading.Event)
    stopping: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None

    def run(self) -> None:
        recent: dict[str, deque[float]] = {}
        while not self.stopping.wait(self.interval):
            now, usage = time.time(), self.sample()
            self.samples.extend({"time": now, "node": n, "cpu_pct": u} for n, u in usage.items())
            means: dict[str, float] = {}
            for node, pct in usage.items():
                last = recent.setdefault(node, deque(maxlen=self.window))
                last.append(pct)
                means[node] = sum(last) / len(last)
            hot = [
                n for n, m in means.items() if len(recent[n]) == self.window and m > self.threshold
            ]
            if not self.armed.is_set() or not hot:
                continue
            try:
                acted = self._decide(max(hot, key=means.__getitem__), means)
            except BaseException as exc:  # handed to the main thread, which raises it
                self.error, acted = exc, True
            if acted:
                self.armed.clear()
                self.decided.set()
            # an offload changes every node's picture: judge on fresh samples only
            recent.clear()

    def _decide(self, node: str, usage: dict[str, float]) -> bool:
        """Plan and run one offload off `node`; False when nothing there can move."""
        began = time.time()  # "start to make offload decision"
        placement = self.offloader.placement
        actors = sorted(a for a in self.movable if placement.get(a) == node)
        targets = sorted(
            (u, n)
            for n, u in usage.items()
            if n != node and n in self.destinations and self.offloader.nodes.alive(n)
        )
        planned = time.time()
        row: dict[str, Any] = {
            "node": node,
            "cpu_pct": usage[node],  # the mean over the window that made the node hot
            "decision_started": began,
            "planned": planned,
            "decision_ms": (planned - began) * 1e3,
        }
        if not actors or not targets:
            row["plan"] = "none"
            self.decisions.append(row)
            return False
        actor, destination = actors[0], targets[0][1]
        row["plan"] = f"offload {actor} trainer {destination}"
        self.decisions.append(row)
        self.offloader.offload(actor, "trainer", destination, "automatic")
        return True
