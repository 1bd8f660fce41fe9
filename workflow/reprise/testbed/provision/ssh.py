"""SSH provider: existing hosts reached with fabric; host keys checked, never accepted silently."""

from __future__ import annotations

import base64
import hashlib
import shlex
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import paramiko  # type: ignore[import-untyped]
from fabric import Config, Connection  # type: ignore[import-untyped]

from reprise.atomic import write_text_atomic
from reprise.errors import ProvisionError
from reprise.testbed.inventory import HostEntry, Inventory
from reprise.testbed.nodes import Node


def fingerprint(key: Any) -> str:
    """OpenSSH's SHA256 fingerprint of a paramiko public key (what `ssh-keygen -lf` prints)."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def same_fingerprint(a: str, b: str) -> bool:
    return a.rstrip("=") == b.rstrip("=")


class _UnknownHostKey(Exception):
    def __init__(self, key: Any) -> None:
        super().__init__(fingerprint(key))
        self.key = key


class _FingerprintMismatch(Exception):
    def __init__(self, expected: str, key: Any) -> None:
        super().__init__(expected)
        self.expected = expected
        self.got = fingerprint(key)


class _CheckedPolicy(paramiko.MissingHostKeyPolicy):  # type: ignore[misc]
    """A key absent from known_hosts is accepted only if it matches the inventory's fingerprint."""

    def __init__(self, expected: str | None) -> None:
        self.expected = expected

    def missing_host_key(self, client: Any, hostname: str, key: Any) -> None:
        if self.expected is None:
            raise _UnknownHostKey(key)
        if not same_fingerprint(fingerprint(key), self.expected):
            raise _FingerprintMismatch(self.expected, key)
        client.get_host_keys().add(hostname, key.get_name(), key)


@dataclass(frozen=True)
class SshTarget:
    """Everything needed to open one checked SSH connection, and to explain a failure."""

    name: str
    address: str
    port: int
    user: str
    key_path: Path | None
    known_hosts: Path | None
    host_key: str | None
    timeout_s: float
    inventory: str = ""

    @property
    def where(self) -> str:
        return f"node {self.name!r} ({self.user}@{self.address}:{self.port})"

    @classmethod
    def from_node(cls, node: Node, timeout_s: float = 10.0) -> SshTarget:
        return cls(
            name=node.name,
            address=node.address,
            port=node.port,
            user=node.user,
            key_path=node.key_path,
            known_hosts=node.known_hosts,
            host_key=None,
            timeout_s=timeout_s,
        )

    @classmethod
    def from_entry(cls, inventory: Inventory, host: HostEntry) -> SshTarget:
        return cls(
            name=host.name,
            address=host.address,
            port=host.port,
            user=host.user or inventory.ssh.user,
            key_path=host.key or inventory.ssh.key,
            known_hosts=inventory.ssh.known_hosts,
            host_key=host.host_key,
            timeout_s=inventory.ssh.connect_timeout_s,
            inventory=str(inventory.path),
        )


def _trust_hint(target: SshTarget) -> str:
    inv = target.inventory or "config/clusters/<cluster>.yaml"
    return (
        f"run `python -m reprise.testbed.trust {inv}` to see its fingerprint and record it "
        f"(after comparing it with `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` on the "
        f"host), "
        f"or put `host_key: <fingerprint>` on node {target.name!r} in the inventory"
    )


def connect(target: SshTarget) -> Any:
    """An open fabric Connection whose host key was checked; ProvisionError says what to fix."""
    if target.key_path is not None and not target.key_path.is_file():
        raise ProvisionError(
            f"{target.where}: private key {target.key_path} does not exist; "
            f"set ssh.key (or the node's key) in {target.inventory or 'the inventory'} "
            f"to a key file"
        )
    have_known = target.known_hosts is not None and target.known_hosts.is_file()
    if not have_known and target.host_key is None:
        missing = f" ({target.known_hosts} does not exist)" if target.known_hosts else ""
        raise ProvisionError(
            f"{target.where}: no known host key to check against{missing}; {_trust_hint(target)}"
        )
    connect_kwargs: dict[str, Any] = {
        "look_for_keys": target.key_path is None,
        "allow_agent": target.key_path is None,
        "banner_timeout": target.timeout_s,
        "auth_timeout": target.timeout_s,
        # Paramiko waits an hour for a channel by default: a node that vanished without closing
        # its TCP connection would hang every later command instead of failing.
        "channel_timeout": max(10.0, 3 * target.timeout_s),
    }
    if target.key_path is not None:
        connect_kwargs["key_filename"] = [str(target.key_path)]
    conn = Connection(
        host=target.address,
        port=target.port,
        user=target.user,
        connect_timeout=target.timeout_s,
        connect_kwargs=connect_kwargs,
        config=Config(overrides={"load_ssh_configs": False}),
    )
    # Fabric's default is AutoAddPolicy; replace it before anything connects.
    conn.client.set_missing_host_key_policy(_CheckedPolicy(target.host_key))
    if have_known:
        conn.client.load_system_host_keys(str(target.known_hosts))
    try:
        conn.open()
    except _UnknownHostKey as exc:
        conn.close()
        raise ProvisionError(
            f"{target.where}: unknown host key {exc} (not in {target.known_hosts}); "
            + _trust_hint(target)
        ) from None
    except _FingerprintMismatch as exc:
        conn.close()
        raise ProvisionError(
            f"{target.where}: HOST KEY MISMATCH: the inventory expects {exc.expected}, the host "
            f"presented {exc.got}. Either someone is intercepting the connection or the host was "
            f"reinstalled; check the key on the host, then update host_key in "
            f"{target.inventory or 'the inventory'}"
        ) from None
    except paramiko.BadHostKeyException as exc:
        conn.close()
        raise ProvisionError(
            f"{target.where}: HOST KEY MISMATCH: {target.known_hosts} records "
            f"{fingerprint(exc.expected_key)}, the host presented {fingerprint(exc.key)}. Either "
            f"someone is intercepting the connection or the host was reinstalled; check the key "
            f"on the host, remove the old line (`ssh-keygen -R {target.address} -f "
            f"{target.known_hosts}`) and run the trust step again"
        ) from None
    except paramiko.AuthenticationException as exc:
        conn.close()
        raise ProvisionError(
            f"{target.where}: authentication failed for user {target.user!r} with key "
            f"{target.key_path or '(agent / default keys)'} ({exc}); add the key's .pub to "
            f"~{target.user}/.ssh/authorized_keys on the node or fix ssh.user/ssh.key"
        ) from None
    except (TimeoutError, paramiko.ssh_exception.NoValidConnectionsError) as exc:
        conn.close()
        raise ProvisionError(
            f"{target.where}: unreachable within {target.timeout_s:g} s ({exc or 'timed out'}); "
            f"check that the host is up, that sshd listens on port {target.port} and that "
            f"address/port in the inventory are right"
        ) from None
    except (OSError, EOFError, paramiko.SSHException) as exc:
        conn.close()
        raise ProvisionError(
            f"{target.where}: SSH connection failed ({type(exc).__name__}: {exc}); check that "
            f"port {target.port} is an SSH server and the node is healthy"
        ) from None
    return conn


def is_alive(conn: Any) -> bool:
    transport = conn.client.get_transport()
    return transport is not None and bool(transport.is_active())


class Connections:
    """One checked connection per node, reopened when its transport died."""

    def __init__(self, timeout_s: float = 10.0) -> None:
        self.timeout_s = timeout_s
        self._open: dict[str, Any] = {}
        self._lock = threading.Lock()

    def get(self, node: Node) -> Any:
        with self._lock:
            conn = self._open.get(node.name)
            if conn is not None and is_alive(conn):
                return conn
            if conn is not None:
                conn.close()
            conn = connect(SshTarget.from_node(node, self.timeout_s))
            conn.transport.set_keepalive(5)  # a silent peer is found out by the next command
            self._open[node.name] = conn
            return conn

    def drop(self, node: Node) -> None:
        with self._lock:
            conn = self._open.pop(node.name, None)
        if conn is not None:
            conn.close()

    def close_all(self) -> None:
        with self._lock:
            conns, self._open = list(self._open.values()), {}
        for conn in conns:
            conn.close()


def _host_key_line(address: str, port: int, key: Any) -> str:
    host = address if port == 22 else f"[{address}]:{port}"
    return f"{host} {key.get_name()} {key.get_base64()}\n"


class SshProvider:
    """Existing hosts: checked, found usable (python, workdir) and described as Nodes."""

    def __init__(self, inventory: Inventory, state_dir: Path) -> None:
        if inventory.provider != "ssh":
            raise ProvisionError(
                f"{inventory.path}: provider is {inventory.provider!r}; SshProvider needs 'ssh'"
            )
        self.inventory = inventory
        self.state_dir = Path(state_dir)
        self.known_hosts = self.state_dir / "known_hosts"
        self._conns: list[Any] = []

    def provision(self) -> list[Node]:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        nodes: list[Node] = []
        lines: list[str] = []
        inv = self.inventory
        for host in inv.hosts:
            target = SshTarget.from_entry(inv, host)
            conn = connect(target)
            self._conns.append(conn)
            # The key the host proved it holds: later connections (launcher, shaping) check it.
            lines.append(
                _host_key_line(host.address, host.port, conn.transport.get_remote_server_key())
            )
            self._check_host(conn, target, inv)
            nodes.append(
                Node(
                    name=host.name,
                    group=host.group,
                    address=host.address,
                    peer_address=host.peer_address,
                    port=host.port,
                    user=target.user,
                    key_path=target.key_path,
                    known_hosts=self.known_hosts,
                    gpus=host.gpus,
                    slots=host.slots,
                    python=inv.python,
                    workdir=inv.workdir,
                    labels=dict(host.labels),
                )
            )
        write_text_atomic(self.known_hosts, "".join(lines))
        return nodes

    @staticmethod
    def _check_host(conn: Any, target: SshTarget, inv: Inventory) -> None:
        cmd = (
            f"{shlex.quote(inv.python)} -c 'import sys; print(sys.version_info >= (3, 11))' "
            f"&& mkdir -p {shlex.quote(inv.workdir)}"
        )
        result = conn.run(cmd, hide=True, warn=True, in_stream=False)
        if result.exited == 127 or (result.ok and result.stdout.strip() != "True"):
            raise ProvisionError(
                f"{target.where}: {inv.python!r} is missing or older than Python 3.11 "
                f"({(result.stderr or result.stdout).strip()}); set `python:` in {inv.path} to "
                f"the node's interpreter that has Reprise's testbed extra"
            )
        if not result.ok:
            raise ProvisionError(
                f"{target.where}: cannot create workdir {inv.workdir} "
                f"({result.stderr.strip()}); set `workdir:` in {inv.path} to a writable folder"
            )

    def teardown(self) -> None:
        # Existing hosts are not ours to remove; only our connections are.
        for conn in self._conns:
            conn.close()
        self._conns = []


def run_checked(conn: Any, command: str, what: str, node: str) -> str:
    """Run a command that must succeed; its stderr goes into the error."""
    result = conn.run(command, hide=True, warn=True, in_stream=False)
    if not result.ok:
        raise ProvisionError(
            f"node {node!r}: {what} failed (exit {result.exited}): "
            f"{(result.stderr or result.stdout).strip()[-500:]}"
        )
    return cast(str, result.stdout)
