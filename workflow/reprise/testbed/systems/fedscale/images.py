"""FedScale's aggregator and executor images, built FROM the node image + the `fedscale` extra."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from reprise.errors import ProvisionError
from reprise.testbed.image import stream_build
from reprise.testbed.provision.docker import connect

ASSETS = Path(__file__).resolve().parents[4] / "testbed" / "fedscale"
"""workflow/testbed/fedscale: Dockerfile and fedscale_init.py."""
ROLES = ("aggregator", "executor")
IMAGE_PACKAGES = (
    "fedscale",
    "torchvision",
    "tensorflow-cpu",
    "tensorboard",
    "wandb",
    "overrides",
)
"""What the images add to the node image (the data set is built on the host, so no scikit-learn)."""


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def image_requirements(lock: Path) -> list[str]:
    """The images' pins, read from requirements.lock (so host and images run the same versions)."""
    pins = {}
    for line in lock.read_text().splitlines():
        if "==" in line:
            name, version = line.split("==", 1)
            pins[_norm(name)] = version.strip()
    missing = [p for p in IMAGE_PACKAGES if p not in pins]
    if missing:
        raise ProvisionError(f"{lock}: no pin for {', '.join(missing)} (the `fedscale` extra)")
    return [f"{p}=={pins[p]}" for p in IMAGE_PACKAGES]


def _node_packages(client: Any, node_tag: str) -> set[str]:
    import docker.errors  # type: ignore[import-untyped]

    try:
        client.images.get(node_tag)
    except docker.errors.ImageNotFound:
        raise ProvisionError(
            f"node image {node_tag[:19]} of results/testbeds/images/node.json is gone; rebuild it "
            "with `snakemake fedscale -R node_image`"
        ) from None
    out = client.containers.run(
        node_tag,
        entrypoint=["/opt/venv/bin/python", "-m", "pip", "list", "--format=json"],
        remove=True,
        network_mode="none",
    )
    return {_norm(p["name"]) for p in json.loads(out)}


def build_wheelhouse(
    requirements: Sequence[str], lock: Path, wheels: Path, skip: set[str], log: IO[str]
) -> list[str]:
    """pip download the requirements' closure on the host, then drop what the node image has."""
    if wheels.exists():
        shutil.rmtree(wheels)
    wheels.mkdir(parents=True)
    argv = [sys.executable, "-m", "pip", "download", "-q", "-c", str(lock), "-d", str(wheels)]
    proc = subprocess.run([*argv, *requirements], stdout=log, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        raise ProvisionError(
            f"pip download of the FedScale images' wheels failed (status {proc.returncode}); "
            f"see {getattr(log, 'name', 'the build log')}"
        )
    kept = []
    for wheel in sorted(wheels.iterdir()):
        project = _norm(wheel.name.split("-")[0])
        if project in skip:
            wheel.unlink()  # already in the node image's /opt/venv at the locked version
        else:
            kept.append(wheel.name)
    (wheels / "requirements.txt").write_text("\n".join(requirements) + "\n")
    return kept


def _build(client: Any, context: Path, tag: str, target: str, node_tag: str, log: IO[str]) -> str:
    """Legacy builder; the tag is set only by a build that succeeded, so no half image is tagged."""
    labels = {"reprise.system": "fedscale", "reprise.role": target}
    stream_build(client, context, tag, {"NODE": node_tag}, labels, log, target=target)
    return str(client.images.get(tag).id)


def build_fedscale_images(
    *,
    node_record: Path,
    lock: Path,
    workdir: Path,
    log_path: Path,
    tag_prefix: str = "reprise-fedscale",
    assets: Path = ASSETS,
) -> dict[str, Any]:
    """Build `<prefix>-aggregator:latest` and `<prefix>-executor:latest`; return the record."""
    node = json.loads(node_record.read_text())
    client = connect(timeout=3600)
    context = workdir / "context"
    context.mkdir(parents=True, exist_ok=True)
    for name in ("Dockerfile", "fedscale_init.py"):
        source = assets / name
        if not source.is_file():
            raise ProvisionError(f"FedScale image asset {source} is missing (part of the checkout)")
        shutil.copyfile(source, context / name)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with log_path.open("w") as log:
        requirements = image_requirements(lock)
        skip = _node_packages(client, node["image_id"])
        wheels = build_wheelhouse(requirements, lock, context / "wheels", skip, log)
        t_wheels = time.monotonic() - started
        images: dict[str, dict[str, Any]] = {
            role: {
                "tag": f"{tag_prefix}-{role}:latest",
                "image_id": _build(
                    client, context, f"{tag_prefix}-{role}:latest", role, node["image_id"], log
                ),
            }
            for role in ROLES
        }
    shutil.rmtree(context / "wheels", ignore_errors=True)
    for info in images.values():
        info["size_bytes"] = int(client.images.get(info["image_id"]).attrs.get("Size", 0))
    return {
        "node_image_id": node["image_id"],
        "images": images,
        "requirements": requirements,
        "wheels": wheels,
        "wheelhouse_seconds": round(t_wheels, 1),
        "seconds": round(time.monotonic() - started, 1),
    }
