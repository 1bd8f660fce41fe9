"""The explicit trust step: fetch each host's key, compare, and write known_hosts for the cluster.

Run: python -m reprise.testbed.trust config/clusters/<name>.yaml [--accept-new] [--known-hosts FILE]
"""

from __future__ import annotations

import argparse
import socket
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paramiko  # type: ignore[import-untyped]

from reprise.errors import ProvisionError
from reprise.testbed.inventory import HostEntry, Inventory, load_inventory
from reprise.testbed.provision.ssh import fingerprint, same_fingerprint


@dataclass(frozen=True)
class TrustResult:
    node: str
    host: str  # the known_hosts name: address, or [address]:port
    fingerprint: str
    status: str  # matched | accepted | known | unverified | mismatch | unreachable
    detail: str = ""

    @property
    def trusted(self) -> bool:
        return self.status in ("matched", "accepted", "known")


def fetch_host_key(address: str, port: int, timeout_s: float) -> Any:
    """The public key a host presents in its SSH handshake (no authentication happens)."""
    sock = socket.create_connection((address, port), timeout=timeout_s)
    transport = paramiko.Transport(sock)
    try:
        transport.banner_timeout = timeout_s
        transport.start_client(timeout=timeout_s)
        return transport.get_remote_server_key()
    finally:
        transport.close()
        sock.close()


def _known_name(host: HostEntry) -> str:
    return host.address if host.port == 22 else f"[{host.address}]:{host.port}"


def _judge(host: HostEntry, name: str, key: Any, known: Any, accept_new: bool) -> TrustResult:
    got = fingerprint(key)
    recorded = known.lookup(name)
    if recorded is not None and key.get_name() in recorded:
        old = fingerprint(recorded[key.get_name()])
        if same_fingerprint(old, got):
            return TrustResult(host.name, name, got, "known")
        return TrustResult(
            host.name, name, got, "mismatch",
            f"known_hosts has {old}; possible interception or a reinstalled host: check on the "
            f"host, then remove the old line with `ssh-keygen -R {host.address} -f <known_hosts>`",
        )  # fmt: skip
    if host.host_key is not None:
        if same_fingerprint(host.host_key, got):
            return TrustResult(host.name, name, got, "matched")
        return TrustResult(
            host.name, name, got, "mismatch",
            f"the inventory's host_key is {host.host_key}; possible interception or a "
            f"reinstalled host: check on the host, then fix host_key",
        )  # fmt: skip
    if accept_new:
        return TrustResult(host.name, name, got, "accepted", "recorded on your --accept-new")
    return TrustResult(
        host.name, name, got, "unverified",
        "no host_key in the inventory: compare with `ssh-keygen -lf "
        "/etc/ssh/ssh_host_ed25519_key.pub` on the host, then rerun with --accept-new "
        "or add host_key to the node",
    )  # fmt: skip


def trust(
    inventory: Inventory, known_hosts: Path | None = None, accept_new: bool = False
) -> list[TrustResult]:
    """Write to `known_hosts` the keys of the hosts that are trusted; report every host."""
    path = known_hosts or inventory.ssh.known_hosts
    if path is None:
        raise ProvisionError(
            f"{inventory.path}: set ssh.known_hosts (the file the trust step writes), "
            f"or pass --known-hosts"
        )
    if inventory.provider != "ssh":
        raise ProvisionError(
            f"{inventory.path}: the trust step is for provider 'ssh' (existing hosts); "
            f"the {inventory.provider} provider records the keys of the nodes it makes"
        )
    known = paramiko.HostKeys()
    if path.is_file():
        known.load(str(path))
    results: list[TrustResult] = []
    for host in inventory.hosts:
        name = _known_name(host)
        try:
            key = fetch_host_key(host.address, host.port, inventory.ssh.connect_timeout_s)
        except (OSError, EOFError, paramiko.SSHException) as exc:
            results.append(
                TrustResult(
                    host.name, name, "-", "unreachable", f"{host.address}:{host.port}: {exc}"
                )
            )
            continue
        result = _judge(host, name, key, known, accept_new)
        if result.status in ("matched", "accepted"):
            known.add(name, key.get_name(), key)
        results.append(result)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    known.save(str(tmp))
    tmp.replace(path)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m reprise.testbed.trust",
        description="Fetch the SSH host keys of a cluster's nodes and record the trusted ones.",
    )
    parser.add_argument("inventory", type=Path, help="config/clusters/<name>.yaml")
    parser.add_argument("--known-hosts", type=Path, help="file to write (default ssh.known_hosts)")
    parser.add_argument(
        "--accept-new",
        action="store_true",
        help="record keys of hosts that have no host_key in the inventory (your explicit choice)",
    )
    args = parser.parse_args(argv)
    try:
        inventory = load_inventory(args.inventory)
        results = trust(inventory, args.known_hosts, args.accept_new)
    except ProvisionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for r in results:
        print(
            f"{r.node:20} {r.host:24} {r.fingerprint:52} {r.status}"
            + (f"  {r.detail}" if r.detail else "")
        )
    untrusted = [r.node for r in results if not r.trusted]
    if untrusted:
        print(f"not trusted: {', '.join(untrusted)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
