"""The frame every testbed experiment shares: provision the inventory's nodes, run, tear them down
whatever happens, and the record fields each run's summary.json starts from (cluster, nodes,
image, input checksums, controller, provisioning and wall seconds)."""

from __future__ import annotations

import json
import platform
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reprise.data.fetch import sha256_of
from reprise.testbed.inventory import Inventory, load_inventory
from reprise.testbed.lifecycle import TestbedRun
from reprise.testbed.providers import make_launcher, make_provider

Progress = Callable[[str], None]


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


@dataclass
class Frame:
    """One provisioned run of an experiment: what its record says about where it ran."""

    inventory_path: Path
    inventory: Inventory
    image_record: Path | None
    started: float
    provisioned_s: float = 0.0
    wall_s: float = 0.0
    run_id: str = ""
    nodes: list[dict[str, Any]] = field(default_factory=list)

    def meta(self, experiment: str) -> dict[str, Any]:
        """The fields every testbed summary.json shares; the caller adds its settings and
        metrics. Call it after the frame closed, so the wall seconds include the teardown."""
        inputs = {str(self.inventory_path): sha256_of(self.inventory_path)}
        image: dict[str, Any] | None = None
        if self.image_record is not None:
            inputs[str(self.image_record)] = sha256_of(self.image_record)
            image = json.loads(self.image_record.read_text())
        return {
            "experiment": experiment,
            "kind": "testbed",
            "cluster": self.inventory.name,
            "provider": self.inventory.provider,
            "run_id": self.run_id,
            "nodes": self.nodes,
            "image": image,
            "inputs": inputs,
            "controller": {"python": platform.python_version(), "host": platform.node()},
            "provision_seconds": round(self.provisioned_s, 3),
            "wall_seconds": round(self.wall_s, 3),
        }


@contextmanager
def provisioned(
    inventory_path: Path,
    state_dir: Path,
    run_dir: Path,
    image_record: Path | None = None,
    progress: Progress = say,
) -> Iterator[tuple[TestbedRun, Frame]]:
    """Bring the inventory's nodes up, hand over the run, tear everything down on every exit
    path (the run's processes by recorded process group, then the nodes)."""
    inventory = load_inventory(inventory_path)
    provider = make_provider(inventory, state_dir)
    launcher = make_launcher(inventory, [])
    frame = Frame(inventory_path, inventory, image_record, time.time())
    progress(f"provisioning {inventory.name} ({inventory.provider})")
    try:
        with TestbedRun(provider, launcher, run_dir) as run:
            frame.provisioned_s = time.time() - frame.started
            frame.run_id = run.run_id
            frame.nodes = [n.as_json() for n in run.nodes]
            progress(f"{len(run.nodes)} node(s) ready in {frame.provisioned_s:.1f} s")
            yield run, frame
    finally:
        frame.wall_s = time.time() - frame.started
