"""The study's Python environments: a virtualenv beside the project's (botocore needs
python-dateutil < 3, the lock pins 4.0.0) and the node image with Ray."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from reprise.errors import ProvisionError
from reprise.testbed.image import REPO, build_image, project_wheel, run_step
from reprise.testbed.provision.docker import connect

# The `ray` extra of pyproject.toml; dateutil is the one pin that differs from requirements.lock.
PINS = ("ray==2.60.0", "boto3==1.44.18", "moto[s3]==5.2.6", "python-dateutil==2.9.0.post0")
NODE_PINS = ("ray==2.60.0", "boto3==1.44.18", "python-dateutil==2.9.0.post0")
ASSETS = REPO / "workflow" / "testbed" / "ray"


def _constraints(lock: Path, dest: Path) -> Path:
    lines = [
        line
        for line in lock.read_text().splitlines()
        if not line.lower().startswith("python-dateutil==")
    ]
    dest.write_text("\n".join([*lines, "python-dateutil==2.9.0.post0"]) + "\n")
    return dest


def make_venv(venv: Path, lock: Path, log: Path) -> dict[str, Any]:
    """A venv with Ray, boto3 and moto whose other packages come from the running one.

    The running interpreter's site-packages is added after the venv's own (a .pth that calls
    site.addsitedir, so editable installs resolve too): torch and Reprise are not installed
    twice, and the venv's python-dateutil 2.9 shadows the lock's 4.0.0.
    """
    base = getattr(sys, "_base_executable", sys.executable)
    with log.open("w") as handle:
        run_step(handle, [base, "-m", "venv", "--clear", str(venv)], f"creating {venv}")
        python = str(venv / "bin" / "python")
        query = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
        purelib = subprocess.run(
            [python, "-c", query], capture_output=True, text=True, check=True
        ).stdout.strip()
        ours = [p for p in sys.path if p.endswith("site-packages")]
        lines = [f"import site; site.addsitedir({p!r})" for p in ours]
        (Path(purelib) / "zz_reprise_parent.pth").write_text("\n".join(lines) + "\n")
        with tempfile.TemporaryDirectory() as tmp:
            cons = _constraints(lock, Path(tmp) / "constraints.txt")
            run_step(
                handle,
                [python, "-m", "pip", "install", "--disable-pip-version-check",
                 "-c", str(cons), *PINS, "flask==3.1.3", "flask-cors==6.0.5"],
                "installing Ray, boto3 and moto into the study's venv (is PyPI reachable?)",
            )  # fmt: skip
        run_step(
            handle,
            [str(venv / "bin" / "python"), "-c", "import ray, boto3, moto, torch, reprise"],
            "importing the study's packages",
        )
    return {"venv": str(venv), "python": str(venv / "bin" / "python"), "pins": list(PINS)}


def build_ray_image(base: str, tag: str, lock: Path, workdir: Path, log: Path) -> dict[str, Any]:
    """The node image plus Ray: wheelhouse on the host, `docker build` from the node image."""
    client = connect(timeout=3600)
    try:
        base_id = str(client.images.get(base).id)
    except Exception:
        raise ProvisionError(
            f"the node image {base!r} is missing; build it first with `snakemake node_image`"
        ) from None
    context = workdir / "context"
    for sub in ("wheels", "project"):
        folder = context / sub
        if folder.exists():
            subprocess.run(["rm", "-rf", str(folder)], check=True)
        folder.mkdir(parents=True)
    (context / "Dockerfile").write_bytes((ASSETS / "Dockerfile").read_bytes())
    with log.open("w") as handle:
        cons = _constraints(lock, workdir / "constraints.txt")
        run_step(
            handle,
            [sys.executable, "-m", "pip", "wheel", "--wheel-dir", str(context / "wheels"),
             "-c", str(cons), *NODE_PINS],
            "pip wheel of Ray and boto3 for the node image",
        )  # fmt: skip
        project_wheel(context / "project", handle)
        image_id, built = build_image(client, context, tag, base, base_id, handle)
    record = {"tag": tag, "id": image_id, "base": base, "built": built, "pins": list(NODE_PINS)}
    return record


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")
