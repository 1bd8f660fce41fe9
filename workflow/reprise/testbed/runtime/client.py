"""The controller's side of the runtime: one agent per node of a TestbedRun, and `apply`, which
re-places jobs on slots and measures how long each took to train again.

`apply` follows upstream's testbed: every changed job stops all its ranks at one iteration and
saves its state, then starts on its new slots (the checkpoint travels point to point when the
first rank moves to another node), and the time until it reports "stable" is its restart
overhead: whole seconds, at most `cap_s` (20 s upstream); a job not stable within the scheduling
slot is charged the whole slot, with a warning, and counted.
"""

from __future__ import annotations

import contextlib
import json
import math
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import grpc  # type: ignore[import-untyped]

from reprise.atomic import write_text_atomic
from reprise.errors import ConfigError, TestbedError
from reprise.testbed.lifecycle import TestbedRun
from reprise.testbed.nodes import Launched, Node
from reprise.testbed.runtime import stubs
from reprise.testbed.runtime.agent import KEEPALIVE, READY

Slot = tuple[str, int]


@dataclass(frozen=True)
class JobSpec:
    """What a job trains: a zoo model at a size, on synthetic data of the real shapes."""

    job: str
    model: str
    global_batch: int
    size: str = "tiny"
    seed: int = 0
    threads: int = 1
    backend: str = "auto"


@dataclass(frozen=True)
class Placement:
    """The slots of a job's ranks, rank 0 first: ((node, slot), ...)."""

    slots: tuple[Slot, ...]

    def __post_init__(self) -> None:
        if not self.slots:
            raise ConfigError("a placement needs at least one slot (None stops the job)")
        if len(set(self.slots)) != len(self.slots):
            raise ConfigError(f"a placement names a slot twice: {self.slots}")

    @property
    def world_size(self) -> int:
        return len(self.slots)

    @property
    def first_node(self) -> str:
        return self.slots[0][0]

    @property
    def nodes(self) -> list[str]:
        return list(dict.fromkeys(n for n, _ in self.slots))

    def describe(self) -> str:
        return " ".join(f"{n}:{s}" for n, s in self.slots)


@dataclass(frozen=True)
class RuntimeSettings:
    cap_s: float = 20.0
    """Upstream's cap on a measured restart (scheduler.py charges at most 20 s)."""
    slot_s: float = 240.0
    """The scheduling slot: a job not stable within it is charged the whole slot."""
    stable_after: int = 1
    progress_every_s: float = 2.0
    agent_port: int = 0
    """0: each agent takes a free port (recorded); a number: that port on every node."""
    start_timeout_s: float = 120.0
    stop_timeout_s: float = 60.0
    rpc_timeout_s: float = 30.0
    trainer_timeout_s: float = 120.0
    """How long a rank waits for its peers (rendezvous, collectives)."""
    on_trainer_failure: str = "restart"
    """restart: a job whose trainer died restarts on its slots from its last checkpoint;
    fail: the job is reported failed and left stopped."""
    on_node_loss: str = "stop"
    """stop: the run stops naming the node; replace: its jobs are stopped and listed by
    `displaced()` for the scheduler to place again."""

    def __post_init__(self) -> None:
        if self.on_trainer_failure not in ("restart", "fail"):
            raise ConfigError(
                f"on_trainer_failure {self.on_trainer_failure!r}: use 'restart' or 'fail'"
            )
        if self.on_node_loss not in ("stop", "replace"):
            raise ConfigError(f"on_node_loss {self.on_node_loss!r}: use 'stop' or 'replace'")
        if self.cap_s <= 0 or self.slot_s <= 0:
            raise ConfigError("cap_s and slot_s must be positive")


@dataclass(frozen=True)
class Event:
    """One report of an agent, as the controller received it."""

    kind: str
    node: str
    job: str
    rank: int
    generation: int
    iteration: int
    world_size: int
    iterations_per_s: float
    exit_code: int
    seconds: float
    time: float
    detail: str
    received: float
    """The controller's monotonic clock when the report arrived."""


@dataclass
class Restart:
    """One job's re-placement in one `apply`: what changed and what it cost."""

    job: str
    kind: str
    generation: int
    world_from: int
    world_to: int
    slots_from: str
    slots_to: str
    began: float
    stop_s: float = 0.0
    checkpoint_iteration: int = -1
    checkpoint_bytes: int = 0
    fetch_s: float = 0.0
    fetch_bytes: int = 0
    measured_s: float | None = None
    charged_s: float = 0.0
    stable: bool = False
    attempts: int = 1
    master_port: int = 0
    phases: dict[str, float] = field(default_factory=dict)
    """Where rank 0's seconds went (queued, rendezvous, build, restore, ddp_and_data,
    first_steps), from its "stable" report; the rest of `measured_s` is stopping, fetching and
    the messages."""
    warning: str = ""


@dataclass(frozen=True)
class Checkpoint:
    node: str
    path: str
    iteration: int
    bytes: int


@dataclass
class _Job:
    spec: JobSpec
    placement: Placement | None = None
    generation: int = 0
    checkpoint: Checkpoint | None = None
    failed: str = ""
    stopping: bool = False
    ports: list[tuple[int, int]] = field(default_factory=list)


@dataclass
class _Agent:
    node: Node
    proc: Launched
    port: int
    pid: int
    channel: Any
    stub: Any
    lost: str = ""


class NodeLost(TestbedError):
    """A node's agent stopped answering; names the node and the jobs that had ranks on it."""

    def __init__(self, node: str, reason: str, jobs: Sequence[str]) -> None:
        held = f"; its jobs: {', '.join(jobs)}" if jobs else ""
        super().__init__(f"node {node!r} was lost ({reason}){held}")
        self.node = node
        self.jobs = list(jobs)


def _event(pb: Any, e: Any, received: float) -> Event:
    return Event(
        kind=pb.Event.Kind.Name(e.kind).lower(),
        node=e.node,
        job=e.job,
        rank=e.rank,
        generation=e.generation,
        iteration=e.iteration,
        world_size=e.world_size,
        iterations_per_s=e.iterations_per_s,
        exit_code=e.exit_code,
        seconds=e.seconds,
        time=e.time,
        detail=e.detail,
        received=received,
    )


class ElasticRuntime:
    """Agents on every node of `run`; jobs placed, re-placed and stopped through `apply`."""

    def __init__(
        self,
        run: TestbedRun,
        settings: RuntimeSettings | None = None,
        progress: Callable[[str], None] = lambda msg: print(msg, file=sys.stderr, flush=True),
    ) -> None:
        self.run = run
        self.settings = settings or RuntimeSettings()
        self.say = progress
        self.pb = stubs.pb()
        self.agents: dict[str, _Agent] = {}
        self.jobs: dict[str, _Job] = {}
        self.events: list[Event] = []
        self.restarts: list[Restart] = []
        self.warnings: list[str] = []
        self.cond = threading.Condition()
        self.closing = False
        self.started_at = time.time()
        self._threads: list[threading.Thread] = []

    # ---- starting -----------------------------------------------------------------------------
    def _dir(self, node: Node, leaf: str) -> str:
        return f"{node.workdir}/runs/{self.run.run_id}/{leaf}"

    def start(self) -> None:
        """Install the protocol's modules on every node, start the agents, wait until each
        answers, and watch them."""
        nodes = self.run.nodes
        installs = [
            self.run.start(
                n, "runtime-stubs", stubs.install_argv(n.python, self._dir(n, "runtime-stubs"))
            )
            for n in nodes
        ]
        self.run.wait_all(self.settings.start_timeout_s, installs)
        procs = {n.name: self._start_agent(n) for n in nodes}
        ready = self._wait_ready(procs)
        for n in nodes:
            port, pid = ready[n.name]
            channel = grpc.insecure_channel(f"{n.address}:{port}", options=KEEPALIVE)
            stub = stubs.rpc().NodeAgentStub(channel)
            agent = _Agent(n, procs[n.name], port, pid, channel, stub)
            info = stub.Describe(self.pb.DescribeRequest(), timeout=self.settings.rpc_timeout_s)
            if info.node != n.name or info.protocol != stubs.PROTOCOL:
                raise TestbedError(
                    f"node {n.name!r}: the agent on {n.address}:{port} is {info.node!r} "
                    f"(protocol {info.protocol}, expected {stubs.PROTOCOL})"
                )
            self.agents[n.name] = agent
            watcher = threading.Thread(target=self._watch, args=(agent,), daemon=True)
            watcher.start()
            self._threads.append(watcher)
        self.say(
            "agents: "
            + ", ".join(f"{a.node.name} at {a.node.address}:{a.port}" for a in self.agents.values())
        )
        self.save(self.run.run_dir)

    def _start_agent(self, node: Node) -> Launched:
        argv = [
            node.python,
            "-m",
            "reprise.testbed.runtime.agent",
            f"--node={node.name}",
            f"--slots={node.slots}",
            f"--gpus={node.gpus}",
            f"--address={node.peer_address}",
            f"--port={self.settings.agent_port}",
            f"--workdir={self._dir(node, 'agents/' + node.name)}",
            f"--python={node.python}",
        ]
        env = {stubs.STUBS_ENV: self._dir(node, "runtime-stubs"), "PYTHONUNBUFFERED": "1"}
        return self.run.start(node, "agent", argv, env)

    def _wait_ready(self, procs: Mapping[str, Launched]) -> dict[str, tuple[int, int]]:
        """Each agent's port and PID from its READY line; an agent that exits first (a port in
        use, a missing package) is an error naming its node, with the end of its log."""
        deadline = time.monotonic() + self.settings.start_timeout_s
        ready: dict[str, tuple[int, int]] = {}
        launcher = self.run.launcher
        while len(ready) < len(procs):
            for name, proc in procs.items():
                if name in ready:
                    continue
                node = self.run.node(name)
                text = launcher.tail(node, proc.log, 50)
                for line in text.splitlines():
                    if line.startswith(READY):
                        info = json.loads(line[len(READY) :])
                        ready[name] = (int(info["port"]), int(info["pid"]))
                if name not in ready and launcher.poll(proc) is not None:
                    port = self.settings.agent_port
                    asked = f"port {port}" if port else "a free port"
                    raise TestbedError(
                        f"the agent of node {name!r} exited before serving on {asked}; "
                        f"log {proc.log} ends with:\n{launcher.tail(node, proc.log, 20)}"
                    )
            if len(ready) < len(procs):
                if time.monotonic() > deadline:
                    late = sorted(set(procs) - set(ready))
                    raise TestbedError(
                        f"agents of {', '.join(late)} did not serve within "
                        f"{self.settings.start_timeout_s:g} s"
                    )
                time.sleep(0.2)
        return ready

    def _watch(self, agent: _Agent) -> None:
        name = agent.node.name
        try:
            for e in agent.stub.Watch(self.pb.WatchRequest()):
                self._record(_event(self.pb, e, time.monotonic()))
        except grpc.RpcError as exc:
            reason = f"{exc.code().name}: {exc.details()}"
        else:
            reason = "its event stream ended"
        with self.cond:
            if self.closing:
                return
            agent.lost = reason
            self.cond.notify_all()
        self.say(f"node {name} lost: {reason}")
        self._record(
            Event("lost", name, "", -1, 0, 0, 0, 0.0, 0, 0.0, time.time(), reason, time.monotonic())
        )

    def _record(self, event: Event) -> None:
        with self.cond:
            self.events.append(event)
            job = self.jobs.get(event.job)
            current = job is not None and event.generation == job.generation
            if current and job is not None and not job.stopping:
                if event.kind == "exited" and event.exit_code != 0 and not job.failed:
                    job.failed = f"rank {event.rank} on {event.node}: {event.detail}"
                elif event.kind == "error" and not job.failed:
                    job.failed = f"node {event.node}: {event.detail}"
            self.cond.notify_all()

    # ---- the jobs -----------------------------------------------------------------------------
    def add_job(self, spec: JobSpec) -> None:
        if spec.job in self.jobs:
            raise ConfigError(f"job {spec.job!r} was added before")
        self.jobs[spec.job] = _Job(spec)

    def failed(self) -> dict[str, str]:
        """Jobs whose trainers failed since they last started, and why."""
        with self.cond:
            return {n: j.failed for n, j in self.jobs.items() if j.failed}

    def lost(self) -> dict[str, str]:
        with self.cond:
            return {n: a.lost for n, a in self.agents.items() if a.lost}

    def displaced(self) -> list[str]:
        """Jobs stopped because a node they used was lost (`on_node_loss: replace`)."""
        lost = self.lost()
        return [
            n
            for n, j in self.jobs.items()
            if j.placement is not None and set(j.placement.nodes) & set(lost)
        ]

    def _holders(self, node: str) -> list[str]:
        return [
            n for n, j in self.jobs.items() if j.placement is not None and node in j.placement.nodes
        ]

    def _check(self, changes: Mapping[str, Placement | None]) -> None:
        unknown = sorted(set(changes) - set(self.jobs))
        if unknown:
            raise ConfigError(f"jobs {', '.join(unknown)} were never added (add_job first)")
        lost = self.lost()
        for node, reason in lost.items():
            held = self._holders(node)
            targeted = [n for n, p in changes.items() if p is not None and node in p.nodes]
            if targeted or (held and self.settings.on_node_loss == "stop"):
                raise NodeLost(node, reason, sorted(set(held) | set(targeted)))
        after: dict[Slot, str] = {}
        for name, job in self.jobs.items():
            placement = changes.get(name, job.placement)
            for slot in placement.slots if placement is not None else ():
                node, index = slot
                if node not in self.agents:
                    raise ConfigError(f"job {name}: no node {node!r} in this run")
                if not 0 <= index < self.agents[node].node.slots:
                    raise ConfigError(
                        f"job {name}: node {node} has slots 0..{self.agents[node].node.slots - 1}"
                    )
                if slot in after:
                    raise ConfigError(f"jobs {after[slot]} and {name} both want {node}:{index}")
                after[slot] = name

    # ---- applying -----------------------------------------------------------------------------
    def apply(self, changes: Mapping[str, Placement | None]) -> dict[str, float]:
        """Re-place jobs (None stops one); returns the restart seconds charged to each job
        given a placement: whole seconds to "stable", at most `cap_s`, the whole slot for a
        job not stable within `slot_s`. Jobs whose trainers failed restart here from their
        last checkpoint (on_trainer_failure: restart)."""
        began = time.monotonic()
        wanted = dict(changes)
        with self.cond:
            for name, job in self.jobs.items():
                restart = self.settings.on_trainer_failure == "restart"
                if restart and job.failed and name not in wanted and job.placement is not None:
                    wanted[name] = job.placement
        self._check(wanted)
        records: dict[str, Restart] = {}
        for name, placement in wanted.items():
            job = self.jobs[name]
            if placement is not None:
                records[name] = self._restart_record(job, placement, began)
        running = [n for n in wanted if self.jobs[n].placement is not None]
        with ThreadPoolExecutor(max_workers=max(1, len(running))) as pool:
            for name, seconds in zip(running, pool.map(self._stop_job, running), strict=True):
                if name in records:
                    record = records[name]
                    record.stop_s = seconds
                    ckpt = self.jobs[name].checkpoint
                    if ckpt is not None:
                        record.checkpoint_iteration = ckpt.iteration
                        record.checkpoint_bytes = ckpt.bytes
        targets = {n: p for n, p in wanted.items() if p is not None}
        starting = list(targets)
        with ThreadPoolExecutor(max_workers=max(1, len(starting))) as pool:
            ports = list(pool.map(lambda n: self._start_job(n, targets[n]), starting))
        for name, port in zip(starting, ports, strict=True):
            records[name].master_port = port
            records[name].generation = self.jobs[name].generation
        self._await_stable(records, began)
        self.restarts.extend(records.values())
        return {name: r.charged_s for name, r in records.items()}

    def _restart_record(self, job: _Job, placement: Placement, began: float) -> Restart:
        before = job.placement
        if job.failed and before is not None:
            kind = "recovery"
        elif before is None:
            kind = "resume" if job.checkpoint is not None else "start"
        elif before.first_node != placement.first_node:
            kind = "migration"
        elif before.world_size != placement.world_size:
            kind = "scale"
        else:
            kind = "move"
        return Restart(
            job=job.spec.job,
            kind=kind,
            generation=job.generation + 1,
            world_from=before.world_size if before is not None else 0,
            world_to=placement.world_size,
            slots_from=before.describe() if before is not None else "",
            slots_to=placement.describe(),
            began=began,
        )

    def _stop_job(self, name: str, checkpoint: bool = True) -> float:
        """Stop every rank of a job at one iteration; rank 0 saves the state (the checkpoint a
        later start resumes from). A job that failed keeps its last good checkpoint."""
        job = self.jobs[name]
        placement = job.placement
        assert placement is not None
        began = time.monotonic()
        with self.cond:
            job.stopping = True
            save = checkpoint and not job.failed
        alive = [n for n in placement.nodes if not self.agents[n].lost]
        sent = time.time()
        # the ranks left of a failed job may wait for a peer that is gone: no use waiting long
        wait = self.settings.stop_timeout_s if save else min(self.settings.stop_timeout_s, 5.0)

        def stop(node: str) -> Any:
            request = self.pb.StopJobRequest(
                job=name,
                checkpoint=save and node == placement.first_node,
                timeout_s=wait,
                sent_at=sent,
            )
            timeout = wait + self.settings.rpc_timeout_s
            try:
                return self.agents[node].stub.StopJob(request, timeout=timeout)
            except grpc.RpcError as exc:
                raise TestbedError(
                    f"node {node!r}: stopping job {name} failed: {exc.code().name} {exc.details()}"
                ) from None

        with ThreadPoolExecutor(max_workers=len(alive) or 1) as pool:
            replies = dict(zip(alive, pool.map(stop, alive), strict=True))
        first = replies.get(placement.first_node)
        if save and first is not None and first.checkpoint_path:
            job.checkpoint = Checkpoint(
                placement.first_node,
                first.checkpoint_path,
                int(first.iteration),
                int(first.checkpoint_bytes),
            )
        killed = {n: list(r.killed) for n, r in replies.items() if r.killed}
        if killed:
            self._warn(f"job {name}: ranks killed after {wait:g} s of waiting: {killed}")
        with self.cond:
            job.placement = None
            job.stopping = False
            job.failed = ""
        return time.monotonic() - began

    def _start_job(self, name: str, placement: Placement) -> int:
        """Hand the ranks to the agents of their nodes, rank 0's first (it picks the port)."""
        job = self.jobs[name]
        with self.cond:
            job.generation += 1
            job.failed = ""
            job.placement = placement
            generation = job.generation
        per_node: dict[str, list[Any]] = {}
        for rank, (node, slot) in enumerate(placement.slots):
            mine = per_node.setdefault(node, [])
            mine.append(self.pb.Rank(rank=rank, local_rank=len(mine), slot=slot))
        first = self.agents[placement.first_node]
        resume = self.pb.CheckpointSource()
        if job.checkpoint is not None:
            holder = self.agents[job.checkpoint.node]
            resume = self.pb.CheckpointSource(
                node=job.checkpoint.node,
                address=holder.node.peer_address,
                port=holder.port,
                path=job.checkpoint.path,
                iteration=job.checkpoint.iteration,
            )
        spec = self.pb.JobSpec(**asdict(job.spec))

        def start(node: str, port: int) -> int:
            request = self.pb.StartRanksRequest(
                spec=spec,
                world_size=placement.world_size,
                ranks=per_node[node],
                master_address=first.node.peer_address,
                master_port=port,
                resume=resume if node == placement.first_node else None,
                generation=generation,
                stable_after=self.settings.stable_after,
                progress_every_s=self.settings.progress_every_s,
                timeout_s=self.settings.trainer_timeout_s,
            )
            try:
                reply = self.agents[node].stub.StartRanks(
                    request, timeout=self.settings.rpc_timeout_s
                )
            except grpc.RpcError as exc:
                raise TestbedError(
                    f"node {node!r}: starting job {name} failed: {exc.code().name} {exc.details()}"
                ) from None
            return int(reply.master_port)

        port = start(placement.first_node, 0)
        rest = [n for n in per_node if n != placement.first_node]
        with ThreadPoolExecutor(max_workers=len(rest) or 1) as pool:
            list(pool.map(lambda n: start(n, port), rest))
        job.ports.append((generation, port))
        return port

    def _await_stable(self, records: Mapping[str, Restart], began: float) -> None:
        """Wait for each job's "stable" (or its failure, or the end of the slot) and charge it."""
        deadline = began + self.settings.slot_s
        pending = set(records)
        retried: set[str] = set()
        while pending:
            with self.cond:
                self.cond.wait_for(lambda: self._settled(pending, records), timeout=0.5)
                stable = {n: self._stable_at(n) for n in pending}
                failed = {n: self.jobs[n].failed for n in pending if self.jobs[n].failed}
            for name, at in stable.items():
                if at is not None:
                    self._charge(records[name], at - began)
                    pending.discard(name)
            lost = self.lost()
            for name in sorted(pending):
                placement = self.jobs[name].placement
                gone = [n for n in placement.nodes if n in lost] if placement else []
                if gone:
                    raise NodeLost(gone[0], lost[gone[0]], [name])
            for name, why in failed.items():
                if name not in pending:
                    continue
                if name in retried or self.settings.on_trainer_failure != "restart":
                    self._warn(f"job {name} failed while restarting: {why}")
                    records[name].warning = f"failed: {why}"
                    records[name].charged_s = self.settings.slot_s
                    pending.discard(name)
                    continue
                # a fresh start (new generation, new rendezvous port) from the checkpoint
                retried.add(name)
                self._warn(f"job {name} failed while restarting ({why}); trying once more")
                placement = self.jobs[name].placement
                assert placement is not None
                self._stop_job(name, checkpoint=False)
                records[name].master_port = self._start_job(name, placement)
                records[name].generation = self.jobs[name].generation
                records[name].attempts += 1
            if pending and time.monotonic() > deadline:
                for name in sorted(pending):
                    message = (
                        f"job {name} was not stable within the {self.settings.slot_s:g} s slot: "
                        "charged the whole slot"
                    )
                    self._warn(message)
                    records[name].warning = message
                    records[name].charged_s = self.settings.slot_s
                return

    def _settled(self, pending: Iterable[str], records: Mapping[str, Restart]) -> bool:
        return any(self._stable_at(n) is not None or self.jobs[n].failed for n in pending) or any(
            a.lost for a in self.agents.values()
        )

    def _stable_event(self, name: str) -> Event | None:
        generation = self.jobs[name].generation
        for e in reversed(self.events):
            if e.job == name and e.kind == "stable" and e.generation == generation:
                return e
        return None

    def _stable_at(self, name: str) -> float | None:
        event = self._stable_event(name)
        return None if event is None else event.received

    def _charge(self, record: Restart, measured: float) -> None:
        record.measured_s = measured
        record.stable = True
        stable = self._stable_event(record.job)
        if stable is not None and stable.detail:
            record.phases = {k: float(v) for k, v in json.loads(stable.detail).items()}
        for e in self.events:
            if e.job == record.job and e.kind == "fetched" and e.generation == record.generation:
                record.fetch_s, record.fetch_bytes = e.seconds, e.iteration
        # upstream: floor of the seconds to "stable", at most 20
        record.charged_s = float(min(math.floor(measured), self.settings.cap_s))

    def _warn(self, message: str) -> None:
        self.warnings.append(message)
        warnings.warn(message, stacklevel=3)
        self.say("warning: " + message)

    # ---- leaving ------------------------------------------------------------------------------
    def stop_all(self) -> None:
        """Stop every running job (no checkpoint: the run is over)."""
        running = [n for n, j in self.jobs.items() if j.placement is not None]
        for name in running:
            with contextlib.suppress(TestbedError):
                self._stop_job(name, checkpoint=False)

    def close(self) -> None:
        """Stop the jobs, ask every agent to leave and close the channels; the TestbedRun
        stops whatever is left by process group."""
        try:
            self.stop_all()
        finally:
            with self.cond:
                self.closing = True
            for agent in self.agents.values():
                if not agent.lost:
                    with contextlib.suppress(grpc.RpcError):
                        agent.stub.Shutdown(self.pb.ShutdownRequest(), timeout=15)
                agent.channel.close()
            for thread in self._threads:
                thread.join(timeout=5)
            with contextlib.suppress(OSError):
                self.save(self.run.run_dir)

    def __enter__(self) -> ElasticRuntime:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- records ------------------------------------------------------------------------------
    def save(self, folder: Path) -> None:
        """runtime.json: agents (node, address, port, PID), jobs (their ports per generation,
        last checkpoint), restarts, warnings."""
        data = {
            "run_id": self.run.run_id,
            "started_at": self.started_at,
            "settings": asdict(self.settings),
            "agents": {
                n: {
                    "address": a.node.address,
                    "peer_address": a.node.peer_address,
                    "port": a.port,
                    "pid": a.pid,
                    "pgid": a.proc.pgid,
                    "log": a.proc.log,
                    "lost": a.lost,
                }
                for n, a in self.agents.items()
            },
            "jobs": {
                n: {
                    "spec": asdict(j.spec),
                    "generation": j.generation,
                    "master_ports": j.ports,
                    "checkpoint": asdict(j.checkpoint) if j.checkpoint else None,
                }
                for n, j in self.jobs.items()
            },
            "restarts": [asdict(r) for r in self.restarts],
            "warnings": self.warnings,
        }
        write_text_atomic(folder / "runtime.json", json.dumps(data, indent=1) + "\n")

    def events_rows(self) -> list[dict[str, Any]]:
        with self.cond:
            return [asdict(e) for e in self.events]
