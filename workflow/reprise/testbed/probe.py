"""What each node has (Python, packages, GPUs or CPU slots) and its clock offset to the head."""

from __future__ import annotations

import json
import shlex
import time
from collections.abc import Sequence
from typing import Any

from reprise.errors import TestbedError
from reprise.testbed.lifecycle import SshLauncher
from reprise.testbed.nodes import Node

_FACTS = r"""
import json, os, platform, socket, subprocess, sys
from importlib import metadata
def version(name):
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None
gpus = []
try:
    out = subprocess.run(
        ["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"],
        capture_output=True, text=True, timeout=30,
    )
    if out.returncode == 0:
        for line in out.stdout.strip().splitlines():
            name, _, memory = line.rpartition(",")
            gpus.append({"name": name.strip(), "memory": memory.strip()})
except (OSError, subprocess.SubprocessError):
    pass
slots = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
print(json.dumps({
    "hostname": socket.gethostname(),
    "python": platform.python_version(),
    "python_path": sys.executable,
    "packages": {p: version(p) for p in ("torch", "reprise", "fabric", "grpcio")},
    "gpus": gpus,
    "cpu_slots": slots,
}))
"""

# Answers one line per line read, with its clock, until stdin closes.
_CLOCK = "import sys, time\nfor _ in sys.stdin:\n    print(repr(time.time()), flush=True)\n"


def clock_offset(launcher: SshLauncher, node: Node, samples: int = 8) -> dict[str, float]:
    """NTP-style: offset = remote time - midpoint of send/receive, from the least-delayed sample."""
    conn = launcher.connections.get(node)
    channel = conn.client.get_transport().open_session(timeout=10)
    try:
        channel.settimeout(10)
        channel.exec_command(f"{shlex.quote(node.python)} -u -c {shlex.quote(_CLOCK)}")
        reader = channel.makefile("r")
        best: tuple[float, float] | None = None
        for _ in range(samples + 1):
            sent = time.time()
            channel.sendall(b"\n")
            line = reader.readline()
            received = time.time()
            if not line:
                raise TestbedError(f"node {node.name!r}: clock probe ended early ({node.python})")
            rtt = received - sent
            offset = float(line) - (sent + received) / 2
            if best is None or rtt < best[0]:
                best = (rtt, offset)
        channel.shutdown_write()
    finally:
        channel.close()
    assert best is not None
    return {"clock_offset_s": best[1], "clock_rtt_s": best[0]}


def probe_node(launcher: SshLauncher, node: Node) -> dict[str, Any]:
    """One node's row of nodes.json: address, versions, GPUs (nvidia-smi) or CPU slots, clock."""
    cmd = f"{shlex.quote(node.python)} -c {shlex.quote(_FACTS)}"
    result = launcher.run(node, cmd, "probing it", 60)
    try:
        facts: dict[str, Any] = json.loads(result.stdout)
    except ValueError:
        raise TestbedError(
            f"node {node.name!r}: probe with {node.python!r} failed (exit {result.exited}): "
            f"{(result.stderr or result.stdout).strip()[-300:]}"
        ) from None
    return {**node_row(node, facts), **clock_offset(launcher, node)}


def node_row(node: Node, facts: dict[str, Any]) -> dict[str, Any]:
    """A node's identity beside what its probe found."""
    return {
        "name": node.name,
        "group": node.group,
        "address": node.address,
        "peer_address": node.peer_address,
        **facts,
        "gpu_count": len(facts["gpus"]),
    }


def probe_nodes(launcher: SshLauncher, nodes: Sequence[Node]) -> list[dict[str, Any]]:
    return [probe_node(launcher, n) for n in nodes]


def facts_script(out: str) -> str:
    """The probe as a program that writes its JSON line to `out` (launchers without a shell
    channel, such as srun steps and pod exec, run it as a process and fetch the file)."""
    return (
        "import contextlib, io, os\n"
        "buf = io.StringIO()\n"
        "with contextlib.redirect_stdout(buf):\n"
        f"    exec({_FACTS!r})\n"
        f"os.makedirs(os.path.dirname({out!r}), exist_ok=True)\n"
        f"open({out!r}, 'w').write(buf.getvalue())\n"
    )
