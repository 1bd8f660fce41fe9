"""Run lifecycle over SSH: start process groups, watch, stop by PGID, collect, tear down."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import socket
import threading
import time
import uuid
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, cast

import paramiko  # type: ignore[import-untyped]
from invoke.exceptions import CommandTimedOut

from reprise.atomic import write_text_atomic
from reprise.errors import ProvisionError, TestbedError
from reprise.testbed.inventory import Link
from reprise.testbed.nodes import Launched, Node, Provider, RunLauncher
from reprise.testbed.provision.ssh import Connections

STATE_FILE = "testbed-run.json"
VANISHED = -1
"""poll()'s status for a process whose group is gone without writing an exit status (killed,
or its node rebooted)."""

# Run by the node's Python: group membership is read from /proc because `kill -0` also succeeds
# on zombies, which linger where PID 1 reaps orphans lazily (as on our CI machines).
_REMOTE = r"""
import os, signal, sys, time
def members(pgid):
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            found.append(int(entry))
    return found
def signal_group(pgid, sig):
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass
def exit_status(log):
    try:
        with open(log + ".rc") as f:
            return int(f.read().strip() or -1)
    except (OSError, ValueError):
        return None
cmd, pgid = sys.argv[1], int(sys.argv[2])
if cmd == "poll":
    rc = exit_status(sys.argv[3])
    if rc is None and members(pgid):
        print("running")
    else:
        if rc is None:
            # the wrapper writes the status before it leaves the group; it may have done both
            # since the first look, so only a second miss means the group went without one
            rc = exit_status(sys.argv[3])
        print("gone" if rc is None else "rc %d" % rc)
elif cmd == "stop":
    grace = float(sys.argv[3])
    if members(pgid):
        signal_group(pgid, signal.SIGTERM)
        end = time.time() + grace
        while members(pgid) and time.time() < end:
            time.sleep(0.05)
        if members(pgid):
            signal_group(pgid, signal.SIGKILL)
            end = time.time() + 5
            while members(pgid) and time.time() < end:
                time.sleep(0.05)
    print("left", len(members(pgid)))
"""

# The wrapper is the session leader: its PID is the PGID of everything the command starts.
_WRAPPER = 'echo $$ > "$0.pid"; "$@"; rc=$?; echo $rc > "$0.rc.tmp" && mv "$0.rc.tmp" "$0.rc"'

# What a dead or unreachable node raises from paramiko/fabric/invoke calls.
_LINK_ERRORS = (OSError, EOFError, paramiko.SSHException, CommandTimedOut, ProvisionError)


class NodeUnreachable(TestbedError):
    """The node stopped answering over SSH (crashed, network gone, sshd killed)."""

    def __init__(self, node: str, doing: str, cause: BaseException) -> None:
        super().__init__(f"node {node!r} became unreachable while {doing}: {cause}")
        self.node = node


class SshLauncher:
    """Launcher for nodes reached by SSH (hosts, Docker containers running sshd)."""

    def __init__(
        self,
        nodes: Sequence[Node] = (),
        connections: Connections | None = None,
        timeout_s: float = 30.0,
        poll_timeout_s: float = 10.0,
    ) -> None:
        self.connections = connections or Connections()
        self.nodes: dict[str, Node] = {n.name: n for n in nodes}
        self.timeout_s = timeout_s
        # A node that vanished without closing its TCP connections is noticed by this bound.
        self.poll_timeout_s = poll_timeout_s

    def add_nodes(self, nodes: Sequence[Node]) -> None:
        self.nodes.update({n.name: n for n in nodes})

    def run(self, node: Node, command: str, doing: str, timeout_s: float | None = None) -> Any:
        """One remote command; a broken link becomes NodeUnreachable naming the node."""
        try:
            conn = self.connections.get(node)
            return conn.run(
                command, hide=True, warn=True, in_stream=False, timeout=timeout_s or self.timeout_s
            )
        except _LINK_ERRORS as exc:
            self.connections.drop(node)
            raise NodeUnreachable(node.name, doing, exc) from None

    def start(
        self,
        node: Node,
        name: str,
        argv: Sequence[str],
        env: Mapping[str, str],
        log: str,
    ) -> Launched:
        self.nodes.setdefault(node.name, node)
        assigns = [f"{k}={v}" for k, v in env.items()]
        q = shlex.quote
        command = (
            f"mkdir -p {q(os.path.dirname(log))} {q(node.workdir)} && cd {q(node.workdir)} && "
            f"rm -f {q(log + '.rc')} {q(log + '.pid')} || exit 97; "
            f"env {' '.join(map(q, assigns))} setsid sh -c {q(_WRAPPER)} {q(log)} "
            f"{' '.join(map(q, argv))} </dev/null >{q(log)} 2>&1 & echo $!"
        )
        result = self.run(node, command, f"starting {name!r}")
        if not result.ok or not result.stdout.strip().isdigit():
            raise TestbedError(
                f"node {node.name!r}: could not start {name!r} ({shlex.join(argv)}): "
                f"{(result.stderr or result.stdout).strip()}"
            )
        pid = int(result.stdout.strip())
        # Not a process-group leader when forked from a non-interactive shell, so setsid(1)
        # makes the wrapper itself the leader: its PID is the new group's id.
        return Launched(node=node.name, name=name, pid=pid, pgid=pid, log=log)

    def _helper(self, node: Node, *args: str) -> str:
        quoted = " ".join(map(shlex.quote, args))
        return f"{shlex.quote(node.python)} -c {shlex.quote(_REMOTE)} {quoted}"

    def poll(self, proc: Launched) -> int | None:
        node = self.nodes[proc.node]
        command = self._helper(node, "poll", str(proc.pgid), proc.log)
        result = self.run(node, command, f"watching {proc.name!r}", self.poll_timeout_s)
        words = result.stdout.split()
        if not result.ok or not words:
            raise TestbedError(
                f"node {node.name!r}: cannot watch {proc.name!r} with {node.python!r}: "
                f"{(result.stderr or result.stdout).strip()}"
            )
        if words[0] == "rc":
            return int(words[1])
        return None if words[0] == "running" else VANISHED

    def stop(self, proc: Launched, grace_s: float = 5.0) -> None:
        node = self.nodes[proc.node]
        command = self._helper(node, "stop", str(proc.pgid), str(grace_s))
        result = self.run(node, command, f"stopping {proc.name!r}", timeout_s=grace_s + 30)
        words = result.stdout.split()
        if not result.ok or words[:1] != ["left"] or words[1] != "0":
            raise TestbedError(
                f"node {node.name!r}: process group {proc.pgid} ({proc.name!r}) survived "
                f"SIGKILL: {(result.stderr or result.stdout).strip()}"
            )

    def fetch(self, node: Node, remote: str, local: Path) -> None:
        local.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.connections.get(node).get(remote, local=str(local))
        except FileNotFoundError:
            raise TestbedError(f"node {node.name!r}: no file {remote} to fetch") from None
        except _LINK_ERRORS as exc:
            self.connections.drop(node)
            raise NodeUnreachable(node.name, f"fetching {remote}", exc) from None

    def tail(self, node: Node, log: str, lines: int = 20) -> str:
        result = self.run(node, f"tail -n {lines} {shlex.quote(log)}", "reading a log", 15)
        return str(result.stdout)

    def recorded_pid(self, node: Node, log: str) -> int | None:
        """The PGID the wrapper wrote beside its log (for a start whose answer never came)."""
        result = self.run(node, f"cat {shlex.quote(log + '.pid')}", "recovering a PID", 15)
        text = result.stdout.strip()
        return int(text) if result.ok and text.isdigit() else None

    def close(self) -> None:
        self.connections.close_all()


def _ssh(launcher: RunLauncher) -> SshLauncher:
    """Link shaping runs `tc` in a shell on the node: only launchers with SSH access have one."""
    if not isinstance(launcher, SshLauncher):
        raise TestbedError(
            f"link shaping needs SSH access to the nodes; {type(launcher).__name__} has none "
            "(put the groups to be shaped on ssh or docker nodes)"
        )
    return launcher


def _node_from_json(data: Mapping[str, Any]) -> Node:
    fields = dict(data)
    for key in ("key_path", "known_hosts"):
        fields[key] = None if fields.get(key) is None else Path(fields[key])
    return Node(**fields)


class _State:
    """The run's JSON record, rewritten atomically before anything relies on what it holds."""

    def __init__(self, path: Path, data: dict[str, Any]) -> None:
        self.path = path
        self.data = data
        self._lock = threading.Lock()

    @classmethod
    def read(cls, path: Path) -> _State | None:
        if not path.is_file():
            return None
        try:
            return cls(path, json.loads(path.read_text()))
        except (OSError, ValueError) as exc:
            raise TestbedError(
                f"{path}: unreadable run record ({exc}); stop what it lists by hand, then delete it"
            ) from None

    def save(self) -> None:
        with self._lock:
            write_text_atomic(self.path, json.dumps(self.data, indent=1))


def _has_orphans(orphans: Mapping[str, Any]) -> bool:
    return bool(orphans.get("processes") or orphans.get("shaping"))


def recover(
    run_dir: Path, launcher: RunLauncher, provider: Provider | None = None
) -> tuple[list[str], dict[str, Any]]:
    """Stop what a crashed run (e.g. Snakemake killed with -9) left: its processes and qdiscs.

    Returns what could not be cleaned (on nodes that do not answer) and those leftovers as
    record entries, which the next run's record keeps for a later try.
    """
    from reprise.testbed.shaping import ShapeRecord, unshape  # shaping imports this module

    state = _State.read(Path(run_dir) / STATE_FILE)
    if state is None or state.data.get("state") == "closed":
        return [], {}
    old = state.data.get("orphans") or {}
    nodes_json = {**old.get("nodes", {}), **state.data.get("nodes", {})}
    nodes = {name: _node_from_json(d) for name, d in nodes_json.items()}
    launcher.add_nodes(list(nodes.values()))
    running = [
        e for e in state.data.get("processes", []) if e.get("status") in ("starting", "running")
    ]
    problems: list[str] = []
    left: list[dict[str, Any]] = []
    for entry in running + list(old.get("processes", [])):
        node = nodes[entry["node"]]
        try:
            pgid = entry.get("pgid") or launcher.recorded_pid(node, entry["log"])
            if pgid is not None:
                launcher.stop(Launched(node.name, entry["name"], pgid, pgid, entry["log"]), 2.0)
            entry["status"] = "stopped"
        except TestbedError as exc:
            problems.append(str(exc))
            left.append(entry)
    kept: list[dict[str, Any]] = []
    for rec in list(state.data.get("shaping", [])) + list(old.get("shaping", [])):
        try:
            unshape(_ssh(launcher), nodes[rec["node"]], ShapeRecord(**rec))
        except TestbedError as exc:
            problems.append(str(exc))
            kept.append(rec)
    if provider is not None:
        try:
            provider.teardown()
        except Exception as exc:
            problems.append(f"provider teardown: {exc}")
    used = {e["node"] for e in left} | {r["node"] for r in kept}
    orphans = {
        "nodes": {n: d for n, d in nodes_json.items() if n in used},
        "processes": left,
        "shaping": kept,
    }
    for entry in running:
        if entry in left:
            entry["status"] = "orphaned"
    state.data.update(
        state="closed" if not problems else "recovery-needed",
        shaping=[],
        orphans=orphans,
        problems=problems,
    )
    state.save()
    return problems, orphans


class TestbedRun:
    """A context for one testbed run: every process it starts is stopped, whatever ends the run.

    On leaving (success, exception, Ctrl-C, SIGTERM): stop every process group, remove the link
    shaping, copy the logs to `run_dir/logs/<node>/`, tear the provider down, close the record.
    """

    __test__ = False  # not a pytest test class, despite the name

    def __init__(
        self,
        provider: Provider,
        launcher: RunLauncher,
        run_dir: Path,
        grace_s: float = 5.0,
    ) -> None:
        self.provider = provider
        self.launcher = launcher
        self.run_dir = Path(run_dir)
        self.grace_s = grace_s
        self.nodes: list[Node] = []
        self.processes: dict[str, Launched] = {}
        self.run_id = time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]
        self._state: _State | None = None
        self._old_handler: Any = None
        self._closing = False
        self._dead: dict[str, str] = {}

    # -- entering -------------------------------------------------------------------------
    def __enter__(self) -> TestbedRun:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        state_path = self.run_dir / STATE_FILE
        left, orphans = recover(self.run_dir, self.launcher, self.provider)
        if left:
            # A node that died with the earlier run cannot be cleaned now; this run goes on
            # (provisioning fails clearly if it needs that node) and keeps the entries.
            warnings.warn(
                f"{state_path}: an earlier run left processes on unreachable nodes: "
                + "; ".join(left),
                stacklevel=2,
            )
        self._install_sigterm()
        try:
            self._state = _State(
                state_path,
                {
                    "version": 1,
                    "run_id": self.run_id,
                    "controller_pid": os.getpid(),
                    "controller_host": socket.gethostname(),
                    "state": "provisioning",
                    "nodes": {},
                    "processes": [],
                    "shaping": [],
                    "orphans": orphans,
                },
            )
            self._state.save()
            self.nodes = self.provider.provision()
            self.launcher.add_nodes(self.nodes)
            self._state.data["nodes"] = {n.name: n.as_json() for n in self.nodes}
            self._state.data["state"] = "active"
            self._state.save()
        except BaseException:
            self._cleanup()
            raise
        return self

    def _install_sigterm(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # signal handlers can only be set from the main thread

        def on_sigterm(signum: int, frame: FrameType | None) -> None:
            if self._closing:
                return  # already tearing down: let it finish
            raise TestbedError(f"run {self.run_id} received SIGTERM; stopping every process")

        self._old_handler = signal.signal(signal.SIGTERM, on_sigterm)

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise TestbedError(
            f"no node {name!r} in this run; nodes: {', '.join(n.name for n in self.nodes)}"
        )

    # -- running --------------------------------------------------------------------------
    def log_path(self, node: Node, name: str) -> str:
        return f"{node.workdir}/runs/{self.run_id}/{node.name}/{name}.log"

    def start(
        self, node: Node | str, name: str, argv: Sequence[str], env: Mapping[str, str] | None = None
    ) -> Launched:
        """Start `argv` on `node`; it is in the record before the controller relies on it."""
        assert self._state is not None, "use TestbedRun as a context manager"
        node = self.node(node) if isinstance(node, str) else node
        key = f"{node.name}/{name}"
        if key in self.processes:
            raise TestbedError(f"a process named {name!r} already runs on node {node.name!r}")
        log = self.log_path(node, name)
        entry: dict[str, Any] = {"node": node.name, "name": name, "log": log, "status": "starting"}
        entry["argv"] = list(argv)
        self._state.data["processes"].append(entry)
        self._state.save()
        proc = self.launcher.start(node, name, argv, dict(env or {}), log)
        entry.update(pid=proc.pid, pgid=proc.pgid, status="running")
        self._state.save()
        self.processes[key] = proc
        return proc

    def _entry(self, key: str) -> dict[str, Any]:
        assert self._state is not None
        for entry in self._state.data["processes"]:
            if f"{entry['node']}/{entry['name']}" == key:
                return cast(dict[str, Any], entry)  # the live dict: updates go into the record
        raise KeyError(key)

    def _failure(self, proc: Launched, rc: int) -> TestbedError:
        node = self.node(proc.node)
        try:
            tail = self.launcher.tail(node, proc.log)
        except TestbedError as exc:
            tail = f"(log unreadable: {exc})"
        how = "vanished without an exit status" if rc == VANISHED else f"exited with status {rc}"
        return TestbedError(
            f"process {proc.name!r} on node {proc.node!r} {how}; log {proc.log} ends with:\n{tail}"
        )

    def stop(self, proc: Launched) -> None:
        """Stop one process group now (the rest of the run goes on)."""
        self.launcher.stop(proc, self.grace_s)
        self._entry(f"{proc.node}/{proc.name}")["status"] = "stopped"
        assert self._state is not None
        self._state.save()

    def wait_all(
        self, timeout: float, procs: Sequence[Launched] | None = None, poll_s: float = 0.5
    ) -> dict[str, int]:
        """Wait until the processes (default: all still running) exit 0; return node/name -> 0.

        The first failure, or a node that dies or stops answering, raises TestbedError naming
        the node and the process (with the end of its log when the node still answers).
        """
        deadline = time.monotonic() + timeout
        chosen = procs if procs is not None else list(self.processes.values())
        waiting = {f"{p.node}/{p.name}": p for p in chosen}
        done: dict[str, int] = {}
        while True:
            for key, proc in waiting.items():
                if key in done:
                    continue
                entry = self._entry(key)
                if entry["status"] == "exited" and entry.get("rc") == 0:
                    done[key] = 0
                    continue
                if entry["status"] != "running":
                    raise TestbedError(
                        f"process {proc.name!r} on node {proc.node!r} was {entry['status']}"
                    )
                try:
                    rc = self.launcher.poll(proc)
                except NodeUnreachable as exc:
                    self._dead[exc.node] = str(exc)
                    raise TestbedError(
                        f"node {proc.node!r} died or became unreachable while running "
                        f"{proc.name!r} (PGID {proc.pgid}): {exc}"
                    ) from None
                if rc is None:
                    continue
                entry.update(status="exited", rc=rc)
                assert self._state is not None
                self._state.save()
                if rc != 0:
                    raise self._failure(proc, rc)
                done[key] = rc
            if len(done) == len(waiting):
                return done
            if time.monotonic() > deadline:
                running = sorted(set(waiting) - set(done))
                raise TestbedError(f"still running after {timeout:g} s: {', '.join(running)}")
            time.sleep(poll_s)

    def shape(self, links: Sequence[Link]) -> None:
        """Cap bandwidth between node groups for the rest of the run (removed on exit)."""
        from reprise.testbed.shaping import shape_links

        assert self._state is not None
        state = self._state

        def record(rec: dict[str, Any]) -> None:
            state.data["shaping"].append(rec)
            state.save()

        shape_links(_ssh(self.launcher), self.nodes, links, record)

    # -- leaving --------------------------------------------------------------------------
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        problems = self._cleanup()
        if exc is None and problems:
            raise TestbedError(
                "testbed run ended, but cleanup was incomplete: " + "; ".join(problems)
            )

    def _guard(self, node: str, doing: str, problems: list[str], fn: Any, *args: Any) -> None:
        if node in self._dead:
            problems.append(f"node {node!r} is unreachable, so {doing} was skipped")
            return
        try:
            fn(*args)
        except NodeUnreachable as exc:
            self._dead[node] = str(exc)
            problems.append(str(exc))
        except TestbedError as exc:
            problems.append(str(exc))

    def _cleanup(self) -> list[str]:
        self._closing = True
        problems: list[str] = []
        try:
            state = self._state
            entries = state.data["processes"] if state is not None else []
            for entry in entries:
                if entry["status"] not in ("starting", "running", "exited"):
                    continue
                proc = self.processes.get(f"{entry['node']}/{entry['name']}")
                if proc is None:  # start never returned: the wrapper wrote the PGID on the node
                    node = next((n for n in self.nodes if n.name == entry["node"]), None)
                    pgid = None
                    if node is not None and node.name not in self._dead:
                        with contextlib.suppress(TestbedError):
                            pgid = self.launcher.recorded_pid(node, entry["log"])
                    if pgid is None:
                        entry["status"] = "not-started"
                        continue
                    proc = Launched(entry["node"], entry["name"], pgid, pgid, entry["log"])
                self._guard(
                    proc.node,
                    f"stopping {proc.name!r}",
                    problems,
                    self.launcher.stop,
                    proc,
                    self.grace_s,
                )
                if proc.node not in self._dead and entry["status"] != "exited":
                    entry["status"] = "stopped"
            if state is not None:
                state.save()
                self._unshape(state, problems)
                self._collect(problems)
        finally:
            try:
                self.provider.teardown()
            except Exception as exc:
                problems.append(f"provider teardown failed: {exc}")
            self.launcher.close()
            if self._state is not None:
                data = self._state.data
                unreached = [e for e in data["processes"] if e["status"] in ("starting", "running")]
                clean = not unreached and not data["shaping"] and not _has_orphans(data["orphans"])
                data["state"] = "closed" if clean else "recovery-needed"
                self._state.data["problems"] = problems
                self._state.save()
            if self._old_handler is not None:
                signal.signal(signal.SIGTERM, self._old_handler)
                self._old_handler = None
        return problems

    def _unshape(self, state: _State, problems: list[str]) -> None:
        from reprise.testbed.shaping import ShapeRecord, unshape

        kept = []
        for rec in state.data["shaping"]:
            node = self.node(rec["node"])
            before = len(problems)
            self._guard(
                node.name,
                "removing link shaping",
                problems,
                unshape,
                _ssh(self.launcher),
                node,
                ShapeRecord(**rec),
            )
            if len(problems) > before:
                kept.append(rec)
        state.data["shaping"] = kept
        state.save()

    def _collect(self, problems: list[str]) -> None:
        for proc in self.processes.values():
            node = self.node(proc.node)
            local = self.run_dir / "logs" / proc.node / Path(proc.log).name
            self._guard(
                node.name,
                f"collecting {proc.log}",
                problems,
                self.launcher.fetch,
                node,
                proc.log,
                local,
            )
            if proc.node not in self._dead:
                with contextlib.suppress(TestbedError):
                    self.launcher.fetch(node, proc.log + ".rc", local.with_name(local.name + ".rc"))
