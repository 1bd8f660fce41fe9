"""Test nodes without Docker: sshd in network namespaces on a private bridge, torn down by PID."""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


def _run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, check=check, capture_output=True, text=True)


def usable() -> str | None:
    """None when namespaces with sshd can be made here, else why not (the skip reason)."""
    if os.geteuid() != 0:
        return "netns test nodes need root (ip netns, veth, bridge)"
    for tool in ("ip", "sshd", "ssh-keygen", "iptables", "tc", "iperf3", "unshare"):
        if shutil.which(tool) is None and not Path("/usr/sbin", tool).exists():
            return (
                f"netns test nodes need {tool!r} (apt-get install openssh-server iperf3 iproute2)"
            )
    if _run("ip", "netns", "list", check=False).returncode != 0:
        return "'ip netns' does not work on this machine"
    return None


def _free_subnet() -> ipaddress.IPv4Network:
    """A /24 under 10.240/12 that no interface or route of this machine uses yet."""
    used = _run("ip", "-4", "route", "show", "table", "all").stdout
    for _ in range(200):
        net = ipaddress.IPv4Network(f"10.{random.randint(240, 250)}.{random.randint(0, 255)}.0/24")
        if str(net.network_address).rsplit(".", 1)[0] + "." not in used:
            return net
    raise RuntimeError("no free /24 under 10.240.0.0/12 for the test bridge")


def _alive(pid: int) -> bool:
    """Running and not a zombie (PID 1 here reaps orphans lazily, so zombies linger)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _kill_pid(pid: int, expect_comm: str | None = None, grace_s: float = 2.0) -> None:
    """SIGTERM a recorded PID (checking its name first if asked: PIDs get reused), then SIGKILL."""
    if not _alive(pid):
        return
    if expect_comm is not None:
        with contextlib.suppress(OSError):
            if Path(f"/proc/{pid}/comm").read_text().strip() != expect_comm:
                return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    end = time.monotonic() + grace_s
    while time.monotonic() < end and _alive(pid):
        time.sleep(0.05)
    if _alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@dataclass
class NetnsNode:
    name: str
    netns: str
    veth: str
    address: str
    folder: Path
    sshd_pid: int = 0
    dead: bool = False  # killed by a test: left out of inventories written afterwards

    @property
    def host_key_pub(self) -> Path:
        return self.folder / "ssh_host_ed25519_key.pub"

    def fingerprint(self) -> str:
        out = _run("ssh-keygen", "-l", "-E", "sha256", "-f", str(self.host_key_pub)).stdout
        return out.split()[1]

    def known_hosts_line(self) -> str:
        kind, blob = self.host_key_pub.read_text().split()[:2]
        return f"{self.address} {kind} {blob}\n"

    def pids(self) -> list[int]:
        """Live processes inside this node's namespace (sshd and whatever it started)."""
        out = _run("ip", "netns", "pids", self.netns, check=False).stdout
        return [int(p) for p in out.split() if _alive(int(p))]


@dataclass
class NetnsCluster:
    """A bridge with N sshd "nodes"; every object it makes is recorded and removed by `stop`."""

    base: Path
    tag: str = field(
        default_factory=lambda: f"{os.getpid() % 10000:04d}{random.randint(0, 99):02d}"
    )
    nodes: dict[str, NetnsNode] = field(default_factory=dict)
    subnet: ipaddress.IPv4Network | None = None
    bridge: str = ""
    iptables_rule: list[str] = field(default_factory=list)
    client_key: Path = Path()

    def start(self) -> NetnsCluster:
        self.base.mkdir(parents=True, exist_ok=True)
        self.subnet = self.subnet or _free_subnet()
        self.bridge = f"rpb{self.tag}"
        gateway = f"{self.subnet.network_address + 1}/24"
        _run("ip", "link", "add", self.bridge, "type", "bridge")
        _run("ip", "addr", "add", gateway, "dev", self.bridge)
        _run("ip", "link", "set", self.bridge, "up")
        # Docker's FORWARD policy is DROP with br_netfilter on: node-to-node traffic needs a rule.
        chain = (
            "DOCKER-USER"
            if _run("iptables", "-S", "DOCKER-USER", check=False).returncode == 0
            else "FORWARD"
        )
        rule = [chain, "-i", self.bridge, "-o", self.bridge, "-j", "ACCEPT"]
        _run("iptables", "-I", *rule)
        self.iptables_rule = rule
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        self.client_key = self.base / "id_ed25519"
        _run(
            "ssh-keygen",
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            "reprise-test",
            "-f",
            str(self.client_key),
        )
        shutil.copy(self.client_key.with_suffix(".pub"), self.base / "authorized_keys")
        return self

    def add_node(self, name: str) -> NetnsNode:
        assert self.subnet is not None, "start() first"
        index = len(self.nodes) + 1
        node = NetnsNode(
            name=name,
            netns=f"rp{self.tag}-{name}",
            veth=f"rpv{self.tag}{index}",
            address=str(self.subnet.network_address + 10 + index),
            folder=self.base / name,
        )
        self.nodes[name] = node
        node.folder.mkdir(parents=True, exist_ok=True)
        _run("ip", "netns", "add", node.netns)
        _run(
            "ip",
            "link",
            "add",
            node.veth,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            node.netns,
        )
        _run("ip", "link", "set", node.veth, "master", self.bridge, "up")
        _run("ip", "-n", node.netns, "addr", "add", f"{node.address}/24", "dev", "eth0")
        _run("ip", "-n", node.netns, "link", "set", "eth0", "up")
        _run("ip", "-n", node.netns, "link", "set", "lo", "up")
        key = node.folder / "ssh_host_ed25519_key"
        _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key))
        config = node.folder / "sshd_config"
        config.write_text(
            f"ListenAddress {node.address}\nPort 22\nHostKey {key}\n"
            f"PidFile {node.folder / 'sshd.pid'}\n"
            f"AuthorizedKeysFile {self.base / 'authorized_keys'}\n"
            "PermitRootLogin prohibit-password\nPubkeyAuthentication yes\n"
            "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
            "StrictModes no\nSubsystem sftp internal-sftp\nLogLevel ERROR\nMaxStartups 50\n"
            "MaxSessions 50\n"
        )
        sshd = shutil.which("sshd") or "/usr/sbin/sshd"
        _run(
            "ip", "netns", "exec", node.netns, "unshare", "--uts", "sh", "-c",
            f"hostname {name}; exec {sshd} -f {config} -E {node.folder / 'sshd.log'}",
        )  # fmt: skip
        pid_file = node.folder / "sshd.pid"
        end = time.monotonic() + 10
        while time.monotonic() < end:
            if pid_file.exists() and pid_file.read_text().strip() and self._listening(node):
                node.sshd_pid = int(pid_file.read_text())
                return node
            time.sleep(0.05)
        raise RuntimeError(
            f"sshd of test node {name} did not come up; see {node.folder / 'sshd.log'}"
        )

    @staticmethod
    def _listening(node: NetnsNode) -> bool:
        try:
            with socket.create_connection((node.address, 22), timeout=0.5):
                return True
        except OSError:
            return False

    def kill_node(self, name: str) -> None:
        """The node dies: its sshd and every process in it are killed, its link goes down."""
        node = self.nodes[name]
        node.dead = True
        for pid in node.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        _run("ip", "link", "del", node.veth, check=False)

    def remove_node(self, name: str) -> None:
        """Undo `add_node`: kill what runs in the node, delete its link and namespace. The name
        stays recorded as dead, so later inventories and known_hosts files leave it out and a
        later node does not reuse its interface index."""
        node = self.nodes[name]
        self.kill_node(name)  # sshd included: it runs in the namespace
        _run("ip", "netns", "del", node.netns, check=False)
        node.sshd_pid = 0

    def stop(self) -> None:
        for node in self.nodes.values():
            if node.sshd_pid:
                _kill_pid(node.sshd_pid, expect_comm="sshd")
            # Everything else in our namespace was started by a test through this node's sshd.
            for pid in node.pids():
                _kill_pid(pid, grace_s=1.0)
            _run("ip", "link", "del", node.veth, check=False)
            _run("ip", "netns", "del", node.netns, check=False)
        self.nodes.clear()
        if self.bridge:
            _run("ip", "link", "del", self.bridge, check=False)
        if self.iptables_rule:
            _run("iptables", "-D", *self.iptables_rule, check=False)
            self.iptables_rule = []

    def known_hosts(self, path: Path, names: list[str] | None = None) -> Path:
        chosen = names if names is not None else [n for n, v in self.nodes.items() if not v.dead]
        path.write_text("".join(self.nodes[n].known_hosts_line() for n in chosen))
        return path

    def inventory(self, path: Path, *, groups: dict[str, str] | None = None, **top: Any) -> Path:
        """Write an ssh-provider inventory for these nodes; `top` overrides top-level keys."""
        groups = groups or {}
        doc: dict[str, Any] = {
            "provider": "ssh",
            "python": os.environ.get("REPRISE_NODE_PYTHON", sys.executable),
            "workdir": str(self.base / "work"),
            "ssh": {"user": "root", "key": str(self.client_key), "connect_timeout_s": 3},
            "nodes": [
                {"name": n.name, "address": n.address, "group": groups.get(n.name, "default")}
                for n in self.nodes.values()
                if not n.dead
            ],
        }
        for key, value in top.items():
            if isinstance(value, dict) and isinstance(doc.get(key), dict):
                doc[key] = {**doc[key], **value}
            else:
                doc[key] = value
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        return path

    def save(self) -> Path:
        """Record every object made, so that a later `stop` from the command line removes them."""
        data = {
            "tag": self.tag,
            "subnet": str(self.subnet),
            "bridge": self.bridge,
            "iptables_rule": self.iptables_rule,
            "client_key": str(self.client_key),
            "nodes": [{**n.__dict__, "folder": str(n.folder)} for n in self.nodes.values()],
        }
        path = self.base / "cluster.json"
        path.write_text(json.dumps(data, indent=1))
        return path

    @classmethod
    def load(cls, base: Path) -> NetnsCluster:
        data = json.loads((base / "cluster.json").read_text())
        nodes = {n["name"]: NetnsNode(**{**n, "folder": Path(n["folder"])}) for n in data["nodes"]}
        return cls(
            base=base,
            tag=data["tag"],
            nodes=nodes,
            subnet=ipaddress.IPv4Network(data["subnet"]),
            bridge=data["bridge"],
            iptables_rule=data["iptables_rule"],
            client_key=Path(data["client_key"]),
        )


def main(argv: list[str] | None = None) -> int:
    """start: N nodes on a fixed subnet (keys, known_hosts, cluster.json in --dir); stop: remove."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("action", choices=["start", "stop"])
    parser.add_argument("--dir", type=Path, default=Path("/tmp/reprise-netns"))
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--subnet", default="10.214.0.0/24")
    args = parser.parse_args(argv)
    if args.action == "stop":
        if (args.dir / "cluster.json").exists():
            NetnsCluster.load(args.dir).stop()
            (args.dir / "cluster.json").unlink()
        return 0
    reason = usable()
    if reason is not None:
        print(reason, file=sys.stderr)
        return 1
    cluster = NetnsCluster(args.dir, subnet=ipaddress.IPv4Network(args.subnet)).start()
    try:
        for i in range(1, args.nodes + 1):
            cluster.add_node(f"node{i}")
    finally:
        cluster.save()
    cluster.known_hosts(args.dir / "known_hosts")
    for node in cluster.nodes.values():
        print(node.name, node.address)
    return 0


if __name__ == "__main__":
    sys.exit(main())
