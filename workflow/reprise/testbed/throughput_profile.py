"""`snakemake throughput_profile`'s run: provision the cluster, profile every model, tear down."""

from __future__ import annotations

import hashlib
import json
import platform
import shutil
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from reprise.testbed.inventory import load_inventory
from reprise.testbed.lifecycle import TestbedRun
from reprise.testbed.profile_record import write_profile_record
from reprise.testbed.profiling import ProfileSettings, profile_models
from reprise.testbed.providers import make_launcher, make_provider


def settings_from_config(entry: Mapping[str, Any]) -> ProfileSettings:
    """The `testbed.throughput_profile` block of config/config.yaml (schema-checked)."""
    return ProfileSettings(
        models=tuple(entry["models"]),
        size=entry.get("size", "tiny"),
        workers=tuple(int(w) for w in entry.get("workers", [1, 2, 4])),
        global_batch_sizes=tuple(int(b) for b in entry.get("global_batch_sizes", [16])),
        warmup=int(entry.get("warmup", 2)),
        iterations=int(entry.get("iterations", 10)),
        threads=int(entry.get("threads", 1)),
        placement=entry.get("placement", "spread"),
        timeout_s=float(entry.get("timeout_s", 600)),
        master_port=int(entry.get("master_port", 29500)),
    )


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run_throughput_profile(
    inventory_path: Path,
    state_dir: Path,
    outdir: Path,
    settings: ProfileSettings,
    image_record: Path | None = None,
    progress: Callable[[str], None] = lambda msg: print(msg, file=sys.stderr, flush=True),
) -> dict[str, Any]:
    """Provision, profile, tear down (whatever happens), then write the run record."""
    inventory = load_inventory(inventory_path)
    provider = make_provider(inventory, state_dir)
    launcher = make_launcher(inventory, [])
    scratch = outdir / "scratch"
    if scratch.exists():
        shutil.rmtree(scratch)  # leftovers of an interrupted run are never read as results
    started = time.time()
    progress(f"provisioning {inventory.name} ({inventory.provider})")
    with TestbedRun(provider, launcher, outdir / "run") as run:
        provisioned = time.time() - started
        progress(f"{len(run.nodes)} node(s) ready in {provisioned:.1f} s")
        results, per_model = profile_models(run, settings, scratch, progress)
        nodes = [n.as_json() for n in run.nodes]
        run_id = run.run_id
    wall = time.time() - started
    shutil.rmtree(scratch, ignore_errors=True)
    inputs: dict[str, str] = {str(inventory_path): _sha256(inventory_path)}
    image: dict[str, Any] | None = None
    if image_record is not None:
        inputs[str(image_record)] = _sha256(image_record)
        image = json.loads(image_record.read_text())
    meta = {
        "experiment": "throughput_profile",
        "cluster": inventory.name,
        "provider": inventory.provider,
        "run_id": run_id,
        "nodes": nodes,
        "image": image,
        "settings": {
            "models": list(settings.models),
            "size": settings.size,
            "workers": list(settings.workers),
            "global_batch_sizes": list(settings.global_batch_sizes),
            "warmup": settings.warmup,
            "iterations": settings.iterations,
            "threads": settings.threads,
            "placement": settings.placement,
        },
        "inputs": inputs,
        "controller": {"python": platform.python_version(), "host": platform.node()},
        "provision_seconds": round(provisioned, 3),
        "wall_seconds": round(wall, 3),
    }
    return write_profile_record(outdir, results, per_model, meta)
