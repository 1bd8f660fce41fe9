"""`snakemake provision`: bring a cluster up, probe every node, shape and measure the links
between node groups, write nodes.json, and tear everything down again."""

from __future__ import annotations

import hashlib
import itertools
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from reprise.atomic import write_text_atomic
from reprise.errors import TestbedError
from reprise.testbed import probe
from reprise.testbed.inventory import Inventory, load_inventory
from reprise.testbed.lifecycle import SshLauncher, TestbedRun
from reprise.testbed.nodes import Node
from reprise.testbed.providers import make_launcher, make_provider
from reprise.testbed.shaping import measure_bandwidth


def _probe_by_process(run: TestbedRun, node: Node, scratch: Path) -> dict[str, Any]:
    """Launchers without a shell channel (srun, pod exec): the probe runs as a process."""
    out = f"{node.workdir}/runs/{run.run_id}/probe-{node.name}.json"
    proc = run.start(node, "probe", [node.python, "-c", probe.facts_script(out)])
    run.wait_all(120, [proc])
    local = scratch / f"probe-{node.name}.json"
    run.launcher.fetch(node, out, local)
    return probe.node_row(node, json.loads(local.read_text()))


def _group_pairs(inventory: Inventory, nodes: Sequence[Node]) -> list[tuple[Node, Node]]:
    """One representative pair per pair of node groups (the first node of each group)."""
    first: dict[str, Node] = {}
    for n in nodes:
        first.setdefault(n.group, n)
    return [(first[a], first[b]) for a, b in itertools.combinations(first, 2)]


def provision_cluster(
    inventory_path: Path,
    state_dir: Path,
    out: Path,
    progress: Callable[[str], None] = lambda _msg: None,
    bandwidth_seconds: float = 2.0,
) -> dict[str, Any]:
    """Provision, probe, shape + measure, tear down; `out` (nodes.json) is written last."""
    inventory = load_inventory(inventory_path)
    provider = make_provider(inventory, state_dir)
    launcher = make_launcher(inventory, [])
    run_dir = out.parent / "provision"
    scratch = run_dir / "scratch"
    scratch.mkdir(parents=True, exist_ok=True)
    started = time.time()
    progress(f"provisioning {inventory.name} ({inventory.provider})")
    with TestbedRun(provider, launcher, run_dir) as run:
        ready_s = time.time() - started
        progress(f"{len(run.nodes)} node(s) ready in {ready_s:.1f} s; probing")
        if isinstance(run.launcher, SshLauncher):
            rows = probe.probe_nodes(run.launcher, run.nodes)
        else:
            rows = [_probe_by_process(run, n, scratch) for n in run.nodes]
        links: list[dict[str, Any]] = []
        pairs = _group_pairs(inventory, run.nodes)
        if pairs and not isinstance(run.launcher, SshLauncher):
            raise TestbedError(
                f"{inventory.path}: measuring bandwidth between node groups needs SSH access "
                f"(provider {inventory.provider!r} has none); give this cluster one group"
            )
        if pairs and isinstance(run.launcher, SshLauncher):
            run.shape(inventory.links)
            caps = {frozenset(link.groups): link.rate_mbit for link in inventory.links}
            for a, b in pairs:
                mbit = measure_bandwidth(run.launcher, a, b, bandwidth_seconds)
                links.append(
                    {
                        "groups": [a.group, b.group],
                        "from": a.name,
                        "to": b.name,
                        "shaped_mbit": caps.get(frozenset((a.group, b.group))),
                        "measured_mbit": round(mbit, 2),
                    }
                )
                progress(f"{a.group} -> {b.group}: {mbit:.1f} Mbit/s")
        run_id = run.run_id
    record = {
        "cluster": inventory.name,
        "provider": inventory.provider,
        "inventory_sha256": hashlib.sha256(inventory_path.read_bytes()).hexdigest(),
        "run_id": run_id,
        "ready_seconds": round(ready_s, 3),
        "wall_seconds": round(time.time() - started, 3),
        "nodes": rows,
        "links": links,
    }
    write_text_atomic(out, json.dumps(record, indent=2, sort_keys=True) + "\n")
    return record
