"""Link shaping between node groups (tc htb + u32 on each side's egress) and iperf3 measurement."""

from __future__ import annotations

import ipaddress
import json
import shlex
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from reprise.errors import TestbedError
from reprise.testbed.inventory import Link
from reprise.testbed.lifecycle import SshLauncher
from reprise.testbed.nodes import Node

HANDLE = "5e1f"
"""Our htb root's handle: distinct from what hosts set up, and the kernel checks it on delete,
so teardown can never remove a qdisc it did not add."""
_DEFAULT_ROOTS = ("noqueue", "pfifo_fast", "mq", "fq_codel", "pfifo", "fq")


@dataclass(frozen=True)
class ShapeRecord:
    """One root qdisc we added: node, device, handle (all teardown needs)."""

    node: str
    dev: str
    handle: str = HANDLE


def _ipv4(launcher: SshLauncher, node: Node, address: str) -> str:
    try:
        return str(ipaddress.IPv4Address(address))
    except ValueError:
        pass
    # A host name: resolve it where the traffic leaves, as the node sees it.
    result = launcher.run(node, f"getent ahostsv4 {shlex.quote(address)}", "resolving a peer")
    words = result.stdout.split()
    if not result.ok or not words:
        raise TestbedError(f"node {node.name!r}: cannot resolve peer address {address!r}")
    return str(words[0])


def _device(launcher: SshLauncher, node: Node, peer_ip: str) -> str:
    result = launcher.run(node, f"ip -o route get {peer_ip}", "finding the route to a peer")
    words = result.stdout.split()
    if not result.ok or "dev" not in words:
        raise TestbedError(
            f"node {node.name!r}: no route to {peer_ip} ({result.stderr.strip()}); "
            f"is `ip` (iproute2) installed and the peer address right?"
        )
    return str(words[words.index("dev") + 1])


def _plan(
    launcher: SshLauncher, nodes: Sequence[Node], links: Sequence[Link]
) -> dict[tuple[str, str], list[tuple[float, list[str]]]]:
    """(node, device) -> [(rate, destination IPs)] for the egress side of every link end."""
    by_group: dict[str, list[Node]] = {}
    for n in nodes:
        by_group.setdefault(n.group, []).append(n)
    plan: dict[tuple[str, str], list[tuple[float, list[str]]]] = {}
    for link in links:
        for src, dst in (link.groups, link.groups[::-1]):
            if not by_group.get(src) or not by_group.get(dst):
                raise TestbedError(
                    f"link {link.groups[0]}<->{link.groups[1]}: no node in group "
                    f"{src if not by_group.get(src) else dst!r} among the provisioned nodes"
                )
            for node in by_group[src]:
                peers = [_ipv4(launcher, node, p.peer_address) for p in by_group[dst]]
                by_dev: dict[str, list[str]] = {}
                for ip in peers:
                    by_dev.setdefault(_device(launcher, node, ip), []).append(ip)
                for dev, ips in by_dev.items():
                    plan.setdefault((node.name, dev), []).append((link.rate_mbit, ips))
    return plan


def shape_links(
    launcher: SshLauncher,
    nodes: Sequence[Node],
    links: Sequence[Link],
    record: Callable[[dict[str, Any]], None],
) -> list[ShapeRecord]:
    """Cap each link's traffic on both ends' egress; `record` is called before each change."""
    by_name = {n.name: n for n in nodes}
    done: list[ShapeRecord] = []
    for (name, dev), classes in _plan(launcher, nodes, links).items():
        node = by_name[name]
        q = shlex.quote(dev)
        shown = launcher.run(node, f"tc qdisc show dev {q} root", "reading qdiscs")
        root = shown.stdout.split()
        if not shown.ok:
            raise TestbedError(
                f"node {name!r}: `tc` failed ({shown.stderr.strip()}); is iproute2 installed?"
            )
        if root[1:3] == ["htb", f"{HANDLE}:"]:
            raise TestbedError(
                f"node {name!r}: {dev} is already shaped by an earlier run that was not cleaned "
                f"up; run reprise.testbed.lifecycle.recover on its run folder, or remove it with "
                f"`tc qdisc del dev {dev} root handle {HANDLE}:` on the node"
            )
        if len(root) > 1 and root[1] not in _DEFAULT_ROOTS:
            raise TestbedError(
                f"node {name!r}: {dev} already has a root qdisc we did not add "
                f"({shown.stdout.strip()}); remove it or shape another way"
            )
        rec = ShapeRecord(node=name, dev=dev)
        record(asdict(rec))
        lines = [f"tc qdisc add dev {q} root handle {HANDLE}: htb default 0"]
        for i, (rate, ips) in enumerate(classes, start=1):
            cls = f"{HANDLE}:{i:x}"
            lines.append(
                f"tc class add dev {q} parent {HANDLE}: classid {cls} htb rate {rate:g}mbit "
                f"ceil {rate:g}mbit"
            )
            lines += [
                f"tc filter add dev {q} parent {HANDLE}: protocol ip prio 1 u32 "
                f"match ip dst {ip}/32 flowid {cls}"
                for ip in ips
            ]
        result = launcher.run(node, " && ".join(lines), "shaping a link")
        if not result.ok:
            raise TestbedError(
                f"node {name!r}: tc failed on {dev} ({result.stderr.strip()}); the node needs "
                f"NET_ADMIN (Docker: cap_add NET_ADMIN) and the htb and u32 kernel modules"
            )
        done.append(rec)
    return done


def unshape(launcher: SshLauncher, node: Node, rec: ShapeRecord) -> None:
    """Remove exactly the root qdisc `rec` names (idempotent: gone already is fine)."""
    q = shlex.quote(rec.dev)
    result = launcher.run(
        node,
        f"if tc qdisc show dev {q} root | grep -q ' {rec.handle}: '; then "
        f"tc qdisc del dev {q} root handle {rec.handle}:; fi",
        "removing link shaping",
    )
    if not result.ok:
        raise TestbedError(
            f"node {node.name!r}: could not remove qdisc {rec.handle}: on {rec.dev}: "
            f"{result.stderr.strip()}"
        )


def measure_bandwidth(
    launcher: SshLauncher, a: Node, b: Node, seconds: float = 3.0, port: int = 5201
) -> float:
    """Mbit/s that `a` sends to `b` (iperf3 -J; server on b started and stopped by its PGID)."""
    b_ip = _ipv4(launcher, a, b.peer_address)
    log = f"{b.workdir}/iperf3/{b.name}-{uuid.uuid4().hex[:8]}.log"
    server = launcher.start(b, "iperf3-server", ["iperf3", "-s", "-1", "-p", str(port)], {}, log)
    try:
        client = f"timeout {seconds + 20:g} iperf3 -c {b_ip} -p {port} -t {seconds:g} -J"
        for _attempt in range(50):
            result = launcher.run(a, client, "measuring bandwidth", seconds + 30)
            try:
                data = json.loads(result.stdout)
            except ValueError:
                raise TestbedError(
                    f"node {a.name!r}: iperf3 gave no JSON (exit {result.exited}): "
                    f"{(result.stderr or result.stdout).strip()[-300:]}; is iperf3 installed?"
                ) from None
            error = str(data.get("error", ""))
            if "refused" in error and launcher.poll(server) is None:
                time.sleep(0.1)  # the server is not listening yet
                continue
            if error:
                raise TestbedError(f"iperf3 {a.name} -> {b.name}: {error}")
            return float(data["end"]["sum_received"]["bits_per_second"]) / 1e6
        raise TestbedError(
            f"iperf3 server on node {b.name!r} never accepted a connection; see {log}"
        )
    finally:
        launcher.stop(server, grace_s=1.0)
