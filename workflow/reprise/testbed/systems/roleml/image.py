"""The RoleML role image: `roleml-ai` (pinned by requirements.lock) on top of the node image."""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path
from typing import Any

from reprise.atomic import write_text_atomic
from reprise.errors import ProvisionError
from reprise.testbed.image import stream_build
from reprise.testbed.provision.docker import connect
from reprise.testbed.systems.fedscale.images import build_wheelhouse

ASSETS = Path(__file__).resolve().parents[4] / "testbed" / "roleml"
"""workflow/testbed/roleml: the Dockerfile."""
EXTRAS = "grpc,containerization"


def _project(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def role_requirement(lock: Path) -> str:
    """`roleml-ai[grpc,containerization]==<the lock's pin>`."""
    for line in lock.read_text().splitlines():
        name, sep, version = line.partition("==")
        if sep and _project(name) == "roleml-ai":
            return f"roleml-ai[{EXTRAS}]=={version.strip()}"
    raise ProvisionError(f"{lock}: no pin for roleml-ai (the `roleml` extra)")


def build_role_image(node_record: Path, lock: Path, record: Path, tag: str) -> dict[str, Any]:
    """Build `tag` FROM the recorded node image; write `record` (ids, wheels, seconds) beside
    the build's log, and return it."""
    workdir, log_path = record.parent / "roleml-build", record.parent / "roleml-build.log"
    node = json.loads(node_record.read_text())
    dockerfile = ASSETS / "Dockerfile"
    if not dockerfile.is_file():
        raise ProvisionError(f"role image asset {dockerfile} is missing (part of the checkout)")
    client = connect(timeout=3600)
    context = workdir / "context"
    shutil.rmtree(context, ignore_errors=True)
    context.mkdir(parents=True)
    shutil.copyfile(dockerfile, context / "Dockerfile")
    # what the node image has already (its record lists the wheels it was built from)
    present = {_project(w["file"].split("-")[0]) for w in node.get("wheels", [])}
    requirement = role_requirement(lock)
    started = time.monotonic()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("w") as log:
        wheels = build_wheelhouse([requirement], lock, context / "wheels", present, log)
        stream_build(
            client,
            context,
            tag,
            {"NODE": node["image_id"]},
            {"reprise.system": "roleml"},
            log,
        )
    shutil.rmtree(context, ignore_errors=True)
    image = client.images.get(tag)
    result = {
        "image_id": str(image.id),
        "tag": tag,
        "node_image_id": node["image_id"],
        "requirement": requirement,
        "wheels": wheels,
        "size_bytes": int(image.attrs.get("Size", 0)),
        "seconds": round(time.monotonic() - started, 1),
    }
    write_text_atomic(record, json.dumps(result, indent=2) + "\n")
    return result
