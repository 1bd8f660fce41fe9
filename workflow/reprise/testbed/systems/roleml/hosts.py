"""RoleML offloading on the hosts of a testbed inventory: each actor a process in its own PID
namespace started over SSH, dumped with CRIU on its host, the images copied through the
controller to another host and restored there; the actor keeps its port, and the conductor tells
every other actor its new address."""

from __future__ import annotations

import io
import json
import re
import shlex
import shutil
import stat
import subprocess
import threading
import time
from collections.abc import Iterable, Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reprise.errors import ConfigError, ProvisionError, TestbedError
from reprise.testbed.interrupts import interrupts_deferred
from reprise.testbed.inventory import Inventory, load_inventory
from reprise.testbed.lifecycle import SshLauncher
from reprise.testbed.nodes import Launched, Node
from reprise.testbed.provision.ssh import SshProvider
from reprise.testbed.systems.roleml.criu import MINIMUM
from reprise.testbed.systems.roleml.local import free_port
from reprise.testbed.systems.roleml.nodes import CgroupNodes

CPU_SOURCES = ("auto", "host", "cgroup")
ACTOR_ARGS = ("-u", "-m", "reprise.testbed.systems.roleml.actor")
HINT = "see docs/roleml.md, 'RoleML on real machines'"

# Run by each host's Python (`python -c HELPER <command> ...`): what the controller needs done on a
# host that is more than one shell command. PIDs are signalled only after /proc/<pid>/cmdline
# shows the run's folder (a PID a host reused belongs to someone else).
_HELPER = r"""
import json, os, re, signal, socket, subprocess, sys, time
cmd, args = sys.argv[1], sys.argv[2:]
def ours(pid, mark):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            if mark.encode() not in f.read():
                return False
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
def child_of(outer):
    for _ in range(200):
        try:
            with open("/proc/%d/task/%d/children" % (outer.pid, outer.pid)) as f:
                kids = f.read().split()
        except OSError:
            kids = []
        if kids:
            return int(kids[0])
        if outer.poll() is not None:
            break
        time.sleep(0.05)
    print("no child of unshare (exit %s)" % outer.poll(), file=sys.stderr)
    sys.exit(3)
# a cgroup node: wait until the controller moved this process into the node's cgroup
WAIT = 'until grep -qF -- "$REPRISE_MARK" /proc/self/cgroup; do sleep 0.02; done; '
quiet = dict(stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
             start_new_session=True)
if cmd == "port":
    s = socket.socket()
    s.bind(("", 0))
    print(s.getsockname()[1])
elif cmd == "start":
    log, cwd, mark, argv = args[0], args[1], args[2], args[3:]
    wait = WAIT if mark else ""
    outer = subprocess.Popen(
        ["unshare", "--pid", "--fork", "--", "setsid", "sh", "-c",
         wait + 'exec "$@" >>"$0" 2>&1', log] + argv,
        cwd=cwd, env=dict(os.environ, REPRISE_MARK=mark), **quiet)
    print(child_of(outer))
elif cmd == "listening":
    port, pid, timeout, mark = int(args[0]), int(args[1]), float(args[2]), args[3]
    end = time.time() + timeout
    while time.time() < end:
        if not ours(pid, mark):
            print("exited")
            sys.exit(0)
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            print("listening")
            sys.exit(0)
        except OSError:
            time.sleep(0.2)
    print("timeout")
elif cmd == "kill":
    mark, pids = args[0], [int(p) for p in args[1:]]
    for pid in pids:
        if ours(pid, mark):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    end = time.time() + 10
    while time.time() < end and any(ours(p, mark) for p in pids):
        time.sleep(0.05)
    print("left", sum(ours(p, mark) for p in pids))
elif cmd == "stress":
    workers, mark, tag = args[0], args[1], args[2]
    wait = WAIT if mark else ""
    proc = subprocess.Popen(
        ["sh", "-c", wait + 'for i in $(seq "$0"); do cat /dev/urandom | gzip -9 >/dev/null & done;'
         ' wait', workers, tag], env=dict(os.environ, REPRISE_MARK=mark), **quiet)
    print(proc.pid)
elif cmd == "check":
    criu = args[0]
    out = {"uid": os.geteuid(), "pidns": os.readlink("/proc/self/ns/pid")}
    with open("/proc/sys/kernel/random/boot_id") as f:
        out["boot_id"] = f.read().strip()
    try:
        done = subprocess.run([criu, "--version"], capture_output=True, text=True, timeout=30)
        found = re.search(r"Version:\s*(\d+(?:\.\d+)*)", done.stdout)
        out["criu"] = found.group(1) if found else "no version in %r" % done.stdout.strip()
    except (OSError, subprocess.SubprocessError) as exc:
        out["criu"] = "does not run (%s)" % exc
    out["tools"] = [t for t in ("unshare", "tar") if subprocess.run(
        ["sh", "-c", "command -v " + t], capture_output=True).returncode != 0]
    try:
        import roleml, torch, reprise.testbed.systems.roleml.roles
        out["env"] = "ok"
    except Exception as exc:
        out["env"] = "%s: %s" % (type(exc).__name__, exc)
    print(json.dumps(out))
"""


@dataclass(frozen=True)
class HostsSettings:
    """`testbed.roleml.hosts`: the inventory, CRIU on the hosts, where a node's CPU is read."""

    inventory: Path
    criu: str = "criu"
    cpu: str = "auto"

    @classmethod
    def parse(cls, settings: Mapping[str, Any]) -> HostsSettings:
        raw = settings.get("hosts")
        if not isinstance(raw, Mapping) or not raw.get("inventory"):
            raise ConfigError(
                "config.yaml: testbed.roleml.runtime is hosts, but testbed.roleml.hosts.inventory "
                "names no inventory; set it to an ssh inventory (config/clusters/<name>.yaml)"
            )
        cpu = str(raw.get("cpu", "auto"))
        if cpu not in CPU_SOURCES:
            raise ConfigError(
                f"config.yaml: testbed.roleml.hosts.cpu is {cpu!r}; use one of {CPU_SOURCES}"
            )
        return cls(Path(str(raw["inventory"])), str(raw.get("criu", "criu")), cpu)


def host_nodes(
    inventory: Inventory, nodes: Mapping[str, Iterable[str]], conductor: str
) -> dict[str, str]:
    """RoleML node -> inventory host: every node is the inventory host of the same name, except
    the conductor's, which is the controller itself."""
    if inventory.provider != "ssh":
        raise ConfigError(
            f"{inventory.path}: provider is {inventory.provider!r}; runtime hosts needs an ssh "
            "inventory (existing machines reached over SSH)"
        )
    hosts = {h.name for h in inventory.hosts}
    mapping: dict[str, str] = {}
    for node, members in nodes.items():
        if conductor in members:
            continue
        if node not in hosts:
            raise ConfigError(
                f"config.yaml: testbed.roleml.nodes names node {node!r}, which is no host of "
                f"{inventory.path} (hosts: {sorted(hosts)}); with runtime hosts every node but "
                "the conductor's is an inventory host of that name"
            )
        mapping[node] = node
    return mapping


def _version(text: str) -> tuple[int, ...] | None:
    return tuple(int(p) for p in text.split(".")) if re.fullmatch(r"\d+(\.\d+)*", text) else None


@dataclass
class Hosts:
    """The run's hosts: SSH connections (host keys checked), remote commands, files."""

    inventory: Inventory
    nodes: dict[str, Node]  # RoleML node name -> provisioned host
    launcher: SshLauncher
    provider: SshProvider
    lock: threading.RLock = field(default_factory=threading.RLock)

    @classmethod
    def open(cls, inventory: Inventory, names: Iterable[str], state_dir: Path) -> Hosts:
        """Connect to every host (reachable, key trusted, Python >= 3.11, workdir writable)."""
        provider = SshProvider(inventory, state_dir)
        wanted = set(names)
        provided = {n.name: n for n in provider.provision() if n.name in wanted}
        return cls(inventory, provided, SshLauncher(list(provided.values())), provider)

    def run(self, node: str, command: str, doing: str, timeout: float = 120.0) -> str:
        with self.lock:
            result = self.launcher.run(self.nodes[node], command, doing, timeout)
        if not result.ok:
            raise TestbedError(
                f"host {node}: {doing} failed (exit {result.exited}): "
                f"{(result.stderr or result.stdout).strip()[-600:]}"
            )
        return str(result.stdout)

    def helper(self, node: str, *args: str, doing: str, timeout: float = 120.0) -> str:
        host = self.nodes[node]
        quoted = " ".join(shlex.quote(a) for a in args)
        command = f"{shlex.quote(host.python)} -c {shlex.quote(_HELPER)} {quoted}"
        return self.run(node, command, doing, timeout).strip()

    def sftp(self, node: str) -> Any:
        return self.launcher.connections.get(self.nodes[node]).sftp()

    def put_bytes(self, node: str, data: bytes, remote: str) -> None:
        with self.lock:
            self.sftp(node).putfo(io.BytesIO(data), remote)

    def reachable(self, node: str) -> bool:
        try:
            self.run(node, "true", "checking the host", timeout=10)
        except TestbedError:
            return False
        return True

    def close(self) -> None:
        self.launcher.close()
        self.provider.teardown()


def check_hosts(hosts: Hosts, criu: str) -> dict[str, dict[str, Any]]:
    """Before anything starts: CRIU >= 4.2, root, unshare and the Python env with RoleML and
    Reprise on every host; one ProvisionError names each host and what it lacks."""
    problems: list[str] = []
    found: dict[str, dict[str, Any]] = {}
    wanted = ".".join(map(str, MINIMUM))
    if shutil.which("ssh") is None:
        problems.append("this machine has no OpenSSH client (`ssh`): the images go through it")
    for name, node in sorted(hosts.nodes.items()):
        where = f"host {name} ({node.user}@{node.address})"
        try:
            info = json.loads(hosts.helper(name, "check", criu, doing="checking", timeout=180))
        except (TestbedError, ValueError) as exc:
            problems.append(f"{where}: the check did not run ({exc})")
            continue
        found[name] = info
        version = _version(str(info["criu"]))
        if version is None:
            problems.append(f"{where}: CRIU at {criu} {info['criu']}; install CRIU >= {wanted}")
        elif version < MINIMUM:
            problems.append(
                f"{where}: CRIU at {criu} is {info['criu']}; role offloading needs {wanted} or "
                "newer (Linux >= 6.16 needs 4.2 to dump TCP sockets)"
            )
        if info["uid"] != 0:
            problems.append(f"{where}: CRIU needs root; log in as root (ssh.user in the inventory)")
        if info["tools"]:
            problems.append(f"{where}: no {' or '.join(info['tools'])} on its PATH")
        if info["env"] != "ok":
            problems.append(
                f"{where}: {node.python} cannot import roleml, torch and Reprise ({info['env']}); "
                "install Reprise with its roleml extra in that Python (the inventory's `python`)"
            )
    if problems:
        raise ProvisionError("; ".join(problems) + f"; {HINT}")
    return found


def cpu_source(wanted: str, found: Mapping[str, Mapping[str, Any]]) -> tuple[str, str]:
    """`host` (each host's /proc/stat, as RoleML's probes read it) or `cgroup` (nodes that share
    the controller's kernel: a per-node cgroup here), and why."""
    with open("/proc/sys/kernel/random/boot_id") as f:
        boot_id = f.read().strip()
    pidns = str(Path("/proc/self/ns/pid").readlink())
    local = sorted(n for n, i in found.items() if i["boot_id"] == boot_id and i["pidns"] == pidns)
    kernels: dict[str, list[str]] = {}
    for name, info in found.items():
        kernels.setdefault(str(info["boot_id"]), []).append(name)
    shared = [sorted(v) for v in kernels.values() if len(v) > 1]
    if wanted == "cgroup" or (wanted == "auto" and local and len(local) == len(found)):
        if len(local) != len(found):
            others = sorted(set(found) - set(local))
            raise ConfigError(
                f"config.yaml: testbed.roleml.hosts.cpu is cgroup, but hosts {others} do not run "
                "on this machine's kernel and PID namespace; per-node cgroups need that (use host)"
            )
        return "cgroup", (
            f"hosts {local} share this machine's kernel: host-wide CPU would read the same for "
            "all, so each node is a cgroup here"
        )
    if shared and wanted == "auto":
        raise ConfigError(
            f"hosts {shared} share one kernel (same boot id) that is not this machine's: their "
            "host-wide CPU readings would be one reading; give each node its own machine, or run "
            "the controller on that machine with testbed.roleml.hosts.cpu: cgroup"
        )
    why = "each host's own /proc/stat (host-wide, as RoleML's probes read it)"
    if shared:  # asked for: say that these nodes' readings are one machine's
        why += f"; hosts {shared} share one kernel, so their readings are that machine's"
    return "host", why


@dataclass
class HostNodes:
    """Nodes that are hosts, each read as a whole (/proc/stat over SSH)."""

    hosts: Hosts
    names: tuple[str, ...]
    cpu_limit: float = 1.0
    _last: dict[str, tuple[int, int]] = field(default_factory=dict)

    def cgroups(self, node: str) -> list[Path]:
        if node not in self.names:
            raise TestbedError(f"unknown node {node!r}; the run's hosts are {list(self.names)}")
        return []

    def alive(self, node: str) -> bool:
        return node in self.hosts.nodes and self.hosts.reachable(node)

    def create(self) -> None:
        """Hosts exist already."""

    def remove_all(self) -> None:
        """Hosts are not ours to remove."""

    def sample(self) -> dict[str, float]:
        """Busy share of every host's CPUs since the previous sample, in percent."""
        out: dict[str, float] = {}
        for node in self.names:
            try:
                line = self.hosts.run(node, "head -1 /proc/stat", "reading CPU", timeout=10)
            except TestbedError:
                continue  # an unreachable host has no reading
            ticks = [int(v) for v in line.split()[1:]]
            idle, total = ticks[3] + ticks[4], sum(ticks[:8])
            if node in self._last:
                was_idle, was_total = self._last[node]
                spent = max(total - was_total, 1)
                out[node] = 100.0 * (spent - (idle - was_idle)) / spent
            self._last[node] = (idle, total)
        return out


@dataclass
class HostControl:
    """The coordinator's pause/paused files, in the control folder on the root actor's host
    (that actor runs the coordinator, so it never moves)."""

    hosts: Hosts
    node: str
    folder: str

    def write(self, name: str, text: str) -> None:
        self.hosts.put_bytes(self.node, text.encode(), f"{self.folder}/{name}")

    def read(self, name: str) -> str | None:
        with self.hosts.lock:
            try:
                with self.hosts.sftp(self.node).open(f"{self.folder}/{name}") as f:
                    return bytes(f.read()).decode()
            except FileNotFoundError:
                return None

    def remove(self, name: str) -> None:
        with self.hosts.lock, suppress(FileNotFoundError):
            self.hosts.sftp(self.node).remove(f"{self.folder}/{name}")


@dataclass
class Placed:
    """Where an actor runs now: its host and the host PID of its namespace's init."""

    node: str
    pid: int


@dataclass
class HostsRuntime:
    """Actors as namespaced processes on the run's hosts; see the module docstring."""

    hosts: Hosts
    criu: str
    run_dir: Path  # on the controller: specs, logs (mirrored), the record
    run_id: str
    placement: Mapping[str, str]  # actor -> node it starts on
    cgroups: CgroupNodes | None = None  # nodes on this machine's kernel: the node cgroups
    kind: str = "hosts"
    where: dict[str, Placed] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)
    stresses: dict[str, int] = field(default_factory=dict)  # node -> stress process group
    log_every: float = 0.1
    _synced: dict[str, float] = field(default_factory=dict)
    _announced: int = 0

    # -- paths ---------------------------------------------------------------------------
    @property
    def base(self) -> str:
        """The run's folder on every host (under the inventory's workdir)."""
        return f"{self.hosts.inventory.workdir}/roleml/{self.run_id}"

    @property
    def mark(self) -> str:
        """In the command line of every process the run starts on a host: what may be killed."""
        return self.base

    def remote(self, local: Path) -> str:
        """A path under the local run folder, as the same path under the hosts' run folder."""
        return f"{self.base}/{local.relative_to(self.run_dir).as_posix()}"

    def remote_log(self, actor: str) -> str:
        return f"{self.base}/logs/{actor}.log"

    def seen_as(self, host_path: Path) -> str:
        if host_path == self.run_dir / "control":
            return f"{self.base}/control"
        return f"{self.base}/data"  # the data folder, copied to every host by prepare()

    def control(self, root_actor: str) -> HostControl:
        return HostControl(self.hosts, self.placement[root_actor], f"{self.base}/control")

    def _node_mark(self, node: str) -> str:
        return "" if self.cgroups is None else self.cgroups.cgroup_parent(node)

    def _join(self, node: str, pid: int) -> None:
        if self.cgroups is not None:
            for path in self.cgroups.cgroups(node):
                (path / "cgroup.procs").write_text(f"{pid}\n")

    def _record(self) -> None:
        record = {
            "run_id": self.run_id,
            "base": self.base,
            "hosts": {n: f"{h.user}@{h.address}" for n, h in self.hosts.nodes.items()},
            "actors": {
                a: {"node": p.node, "pid": p.pid, "address": self.address(a)}
                for a, p in self.where.items()
            },
            "stress": self.stresses,
        }
        (self.run_dir / "hosts.json").write_text(json.dumps(record, indent=1) + "\n")

    # -- set-up --------------------------------------------------------------------------
    def prepare(self, data_dir: Path) -> None:
        """The run's folders on every host, the data copied into each."""
        files = sorted(p for p in data_dir.iterdir() if p.is_file())
        for node in self.hosts.nodes:
            dirs = " ".join(
                shlex.quote(f"{self.base}/{d}") for d in ("logs", "specs", "data", "control")
            )
            self.hosts.run(node, f"mkdir -p {dirs}", "creating the run's folder")
            with self.hosts.lock:
                sftp = self.hosts.sftp(node)
                for path in files:
                    sftp.put(str(path), f"{self.base}/data/{path.name}")
        self._record()

    def addresses(self, actors: tuple[str, ...]) -> dict[str, str]:
        """`<host address>:<a port free there now>`; the port goes with the actor."""
        out: dict[str, str] = {}
        for actor in actors:
            node = self.placement[actor]
            port = int(self.hosts.helper(node, "port", doing="choosing a port"))
            self.ports[actor] = port
            out[actor] = f"{self.hosts.nodes[node].peer_address}:{port}"
        return out

    def conductor_address(self) -> str:
        """This machine's address on the route to the first host, and a free port here."""
        first = next(iter(self.hosts.nodes.values()))
        conn = self.hosts.launcher.connections.get(first)
        local_ip = conn.client.get_transport().sock.getsockname()[0]
        return f"{local_ip}:{free_port()}"

    def address(self, actor: str) -> str:
        node = self.hosts.nodes[self.where[actor].node]
        return f"{node.peer_address}:{self.ports[actor]}"

    # -- actors --------------------------------------------------------------------------
    def log(self, actor: str) -> Path:
        """The actor's log, mirrored here from its host (appended since the last look)."""
        local = self.run_dir / "logs" / f"{actor}.log"
        now = time.monotonic()
        if actor in self.where and now - self._synced.get(actor, 0.0) >= self.log_every:
            self._synced[actor] = now
            self._sync_log(actor, local)
        return local

    def _sync_log(self, actor: str, local: Path) -> None:
        local.parent.mkdir(parents=True, exist_ok=True)
        have = local.stat().st_size if local.exists() else 0
        with suppress(OSError, TestbedError), self.hosts.lock:
            with self.hosts.sftp(self.where[actor].node).open(self.remote_log(actor)) as f:
                f.seek(have)
                more = f.read()
            if more:
                with local.open("ab") as out:
                    out.write(more)

    def has(self, actor: str) -> bool:
        return actor in self.where

    def start(self, actor: str, spec: Mapping[str, Any], node: str, timeout: float) -> None:
        spec_path = self.run_dir / "specs" / f"{actor}.json"
        spec_path.parent.mkdir(parents=True, exist_ok=True)
        spec_path.write_text(json.dumps(spec, indent=1))
        self.hosts.put_bytes(node, spec_path.read_bytes(), self.remote(spec_path))
        host = self.hosts.nodes[node]
        argv = [host.python, *ACTOR_ARGS, self.remote(spec_path), "--detachable"]
        with interrupts_deferred():  # started and recorded, or neither
            pid = int(
                self.hosts.helper(
                    node,
                    "start",
                    self.remote_log(actor),
                    host.workdir,
                    self._node_mark(node),
                    *argv,
                    doing=f"starting actor {actor}",
                )
            )
            self.where[actor] = Placed(node, pid)
            self._record()
        self._join(node, pid)
        state = self.hosts.helper(
            node,
            "listening",
            str(self.ports[actor]),
            str(pid),
            str(timeout),
            self.mark,
            doing=f"waiting for actor {actor}",
            timeout=timeout + 30,
        )
        if state != "listening":
            what = (
                "exited before listening"
                if state == "exited"
                else f"did not listen within {timeout:.0f}s"
            )
            tail = self.log(actor).read_text(errors="replace")[-800:]
            raise TestbedError(f"actor {actor} on host {node} {what}; its log ends: {tail}")

    def checkpoint(self, actor: str, images: Path, attempts: int = 3) -> float:
        """CRIU dump on the actor's host (the process ends); established TCP connections are
        dumped, and restored closed (the peers' gRPC channels reconnect)."""
        placed = self.where[actor]
        folder = shlex.quote(self.remote(images))
        command = (
            f"mkdir -p {folder} && {shlex.quote(self.criu)} dump -t {placed.pid} "
            f"--tcp-established --manage-cgroups=ignore -D {folder} -o dump.log"
        )
        started = time.monotonic()
        for attempt in range(1, attempts + 1):
            try:
                self.hosts.run(placed.node, command, f"criu dump of {actor}", timeout=600)
                break
            except TestbedError as exc:
                # a thread that ends while CRIU seizes the tree fails the dump; the process runs
                # on untouched, so trying again is safe
                if attempt == attempts or "No such process" not in self._criu_log(
                    placed.node, images, "dump.log", exc
                ):
                    raise TestbedError(
                        f"criu dump of {actor} on host {placed.node} failed: "
                        f"{self._criu_log(placed.node, images, 'dump.log', exc)}"
                    ) from None
        seconds = time.monotonic() - started
        self._sync_log(actor, self.run_dir / "logs" / f"{actor}.log")
        del self.where[actor]
        self._record()
        return seconds

    def _criu_log(self, node: str, images: Path, name: str, exc: Exception) -> str:
        with suppress(TestbedError):
            tail = self.hosts.run(
                node, f"tail -n 5 {shlex.quote(self.remote(images) + '/' + name)}", "reading"
            )
            return " | ".join(tail.splitlines())
        return str(exc)

    def image_bytes(self, images: Path, node: str) -> int:
        with self.hosts.lock:
            sftp = self.hosts.sftp(node)
            return sum(
                a.st_size or 0
                for a in sftp.listdir_attr(self.remote(images))
                if stat.S_ISREG(a.st_mode or 0)
            )

    def _ssh(self, node: str, command: str) -> list[str]:
        """OpenSSH to a host with the key and the host keys the provider checked."""
        host = self.hosts.nodes[node]
        argv = ["ssh", "-p", str(host.port), "-o", "BatchMode=yes"]
        argv += ["-o", "StrictHostKeyChecking=yes", "-o", f"UserKnownHostsFile={host.known_hosts}"]
        if host.key_path is not None:
            argv += ["-i", str(host.key_path), "-o", "IdentitiesOnly=yes"]
        return [*argv, f"{host.user}@{host.address}", command]

    def ship(self, actor: str, images: Path, shipped: Path, source: str, destination: str) -> int:
        """Source host -> this machine -> destination host: the images as one tar stream through
        two OpenSSH connections (paramiko's SFTP moved ~20 MB/s here), then the actor's log
        (CRIU reopens it by path and checks its size). Returns the bytes sent."""
        q = shlex.quote
        reader = subprocess.Popen(
            self._ssh(source, f"tar -C {q(self.remote(images))} -cf - ."),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        writer = subprocess.Popen(
            self._ssh(destination, f"mkdir -p {q(self.remote(shipped))} && "
                      f"tar -C {q(self.remote(shipped))} -xf -"),
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )  # fmt: skip
        assert reader.stdout is not None and writer.stdin is not None
        sent = 0
        try:
            while chunk := reader.stdout.read(1 << 20):
                writer.stdin.write(chunk)
                sent += len(chunk)
        except BrokenPipeError:
            pass  # the writer's status and message say why
        finally:
            writer.stdin.close()
            for proc in (reader, writer):
                try:
                    proc.wait(60)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        for proc, where in ((reader, source), (writer, destination)):
            if proc.returncode != 0:
                assert proc.stderr is not None
                raise TestbedError(
                    f"copying the images of {actor} {source} -> {destination} failed on host "
                    f"{where} ({proc.returncode}): {proc.stderr.read().decode().strip()[-400:]}"
                )
        with self.hosts.lock:
            log = io.BytesIO()
            self.hosts.sftp(source).getfo(self.remote_log(actor), log)
            sent += log.tell()
            log.seek(0)
            self.hosts.sftp(destination).putfo(log, self.remote_log(actor))
        return sent

    def discard(self, images: Path, node: str) -> None:
        with suppress(TestbedError):
            self.hosts.run(node, f"rm -rf {shlex.quote(self.remote(images))}", "removing images")

    def restore(self, actor: str, images: Path, node: str) -> float:
        """CRIU restore on `node`'s host, detached; the actor listens on its port there."""
        folder = self.remote(images)
        pidfile = f"{folder}/restored.pid"
        command = (
            f"cd {shlex.quote(self.hosts.nodes[node].workdir)} && rm -f {shlex.quote(pidfile)} && "
            f"{shlex.quote(self.criu)} restore -d --tcp-close --manage-cgroups=ignore "
            f"--pidfile {shlex.quote(pidfile)} -D {shlex.quote(folder)} -o restore.log && "
            f"cat {shlex.quote(pidfile)}"
        )
        started = time.monotonic()
        # interrupted half-way, the restored actor would run on with its PID unrecorded
        with interrupts_deferred():
            try:
                out = self.hosts.run(node, command, f"criu restore of {actor}", timeout=600)
            except TestbedError as exc:
                raise TestbedError(
                    f"criu restore of {actor} on host {node} failed: "
                    f"{self._criu_log(node, images, 'restore.log', exc)}"
                ) from None
            pid = int(out.split()[-1])
            self.where[actor] = Placed(node, pid)
            self._record()
        self._join(node, pid)
        return time.monotonic() - started

    def announce(self, actor: str, timeout: float = 60.0) -> float:
        """Tell the conductor the actor's address now; its relay role tells every other actor
        (RoleML's `update-contacts`) and answers. Seconds until every actor knew."""
        control = self.run_dir / "control"
        self._announced += 1
        seq = self._announced
        started = time.monotonic()
        update = {"seq": seq, "actor": actor, "address": self.address(actor)}
        tmp = control / "contacts.json.tmp"
        tmp.write_text(json.dumps(update))
        tmp.replace(control / "contacts.json")
        ack = control / "contacts-ack.json"
        while time.monotonic() - started < timeout:
            with suppress(FileNotFoundError, ValueError):
                answer = json.loads(ack.read_text())
                if answer["seq"] == seq:
                    if answer["failed"]:
                        raise TestbedError(
                            f"the new address of {actor} did not reach {answer['failed']}"
                        )
                    return time.monotonic() - started
            time.sleep(0.02)
        raise TestbedError(f"the conductor did not pass on {actor}'s address within {timeout}s")

    # -- stress and teardown ---------------------------------------------------------------
    def start_stress(self, node: str, workers: int) -> None:
        pgid = int(
            self.hosts.helper(
                node, "stress", str(workers), self._node_mark(node), self.mark,
                doing="starting the stress",
            )
        )  # fmt: skip
        self.stresses[node] = pgid
        self._record()
        self._join(node, pgid)

    def stop_stress(self, node: str) -> None:
        pgid = self.stresses.get(node)
        if pgid is None:
            return
        with self.hosts.lock:  # SIGKILL to the group, and wait until none of it is left
            self.hosts.launcher.stop(Launched(node, "stress", pgid, pgid, ""), grace_s=0.0)
        del self.stresses[node]
        self._record()

    def stop_all(self) -> None:
        """Every actor and stress killed by recorded PID on its host, the logs mirrored here,
        the run's folder removed from every host; problems are collected, then raised."""
        problems: list[str] = []
        for node in list(self.stresses):
            try:
                self.stop_stress(node)
            except TestbedError as exc:
                problems.append(str(exc))
        by_node: dict[str, list[str]] = {}
        for actor, placed in self.where.items():
            by_node.setdefault(placed.node, []).append(actor)
        for node, actors in by_node.items():
            pids = [str(self.where[a].pid) for a in actors]
            try:
                left = self.hosts.helper(node, "kill", self.mark, *pids, doing="stopping actors")
                if left != "left 0":
                    problems.append(f"host {node}: actors {actors} survived SIGKILL ({left})")
            except TestbedError as exc:
                problems.append(str(exc))
            for actor in actors:
                self._sync_log(actor, self.run_dir / "logs" / f"{actor}.log")
        self.where.clear()
        self._record()
        for node in self.hosts.nodes:
            try:
                self.hosts.run(node, f"rm -rf {shlex.quote(self.base)}", "removing the run folder")
            except TestbedError as exc:
                problems.append(str(exc))
        self.hosts.close()
        if problems:
            raise TestbedError("cleanup on the hosts was incomplete: " + "; ".join(problems))


@dataclass
class HostStress:
    """`workers` x `cat /dev/urandom | gzip -9` on a node's host, stopped by process group."""

    runtime: HostsRuntime
    node: str
    workers: int = 1
    started: float = 0.0

    def start(self) -> None:
        self.runtime.start_stress(self.node, self.workers)
        self.started = time.time()

    def stop(self) -> None:
        self.runtime.stop_stress(self.node)


def open_hosts_runtime(
    settings: Mapping[str, Any],
    conductor: str,
    run_dir: Path,
    run_id: str,
    placement: Mapping[str, str],
) -> tuple[HostsRuntime, CgroupNodes | HostNodes, dict[str, Any]]:
    """Connect to and check every host before anything starts; the runtime, its nodes and what
    was found (for the summary). Connections are closed again when a check fails."""
    chosen = HostsSettings.parse(settings)
    inventory = load_inventory(chosen.inventory)
    mapping = host_nodes(inventory, settings["nodes"], conductor)
    hosts = Hosts.open(inventory, mapping, run_dir / "ssh")
    try:
        found = check_hosts(hosts, chosen.criu)
        source, why = cpu_source(chosen.cpu, found)
    except BaseException:
        hosts.close()
        raise
    nodes: CgroupNodes | HostNodes
    if source == "cgroup":
        nodes = CgroupNodes(
            f"{run_dir.name}-{run_id}", tuple(settings["nodes"]), float(settings["cpu_limit"])
        )
    else:
        nodes = HostNodes(hosts, tuple(mapping))
    runtime = HostsRuntime(
        hosts,
        chosen.criu,
        run_dir,
        run_id,
        placement,
        nodes if isinstance(nodes, CgroupNodes) else None,
    )
    versions = sorted({str(i["criu"]) for i in found.values()})
    info = {
        "inventory": str(inventory.path),
        "hosts": {n: h.address for n, h in hosts.nodes.items()},
        "cpu_source": source,
        "cpu_source_why": why,
        "criu": ",".join(versions),
    }
    return runtime, nodes, info
