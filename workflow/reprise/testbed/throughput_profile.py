"""`snakemake throughput_profile`'s run: provision the cluster, profile every model, tear down."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from reprise.testbed.frame import provisioned, say
from reprise.testbed.profile_record import write_profile_record
from reprise.testbed.profiling import ProfileSettings, profile_models


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


def run_throughput_profile(
    inventory_path: Path,
    state_dir: Path,
    outdir: Path,
    settings: ProfileSettings,
    image_record: Path | None = None,
    progress: Callable[[str], None] = say,
) -> dict[str, Any]:
    """Provision, profile, tear down (whatever happens), then write the run record."""
    scratch = outdir / "scratch"
    if scratch.exists():
        shutil.rmtree(scratch)  # leftovers of an interrupted run are never read as results
    with provisioned(inventory_path, state_dir, outdir / "run", image_record, progress) as (
        run,
        frame,
    ):
        results, per_model = profile_models(run, settings, scratch, progress)
    shutil.rmtree(scratch, ignore_errors=True)
    meta = {
        **frame.meta("throughput_profile"),
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
    }
    return write_profile_record(outdir, results, per_model, meta)
