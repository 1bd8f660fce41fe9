"""AdaptDL's environments: a venv for replicas on this machine, and the node image with AdaptDL.

Both pin setuptools==81.0.0 (AdaptDL imports pkg_resources, gone in 82) where requirements.lock
has 84.2.1; every other version comes from the lock.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from reprise.atomic import write_text_atomic
from reprise.errors import ProvisionError
from reprise.testbed.image import project_wheel, run_step, stream_build
from reprise.testbed.systems.adaptdl.compat import ADAPTDL_VERSION, SETUPTOOLS_PIN

# The `adaptdl` extra of pyproject.toml (async-timeout: redis on the nodes' Python 3.11.2)
EXTRA = ("adaptdl", "autograd", "portpicker", "redis", "semver", "async-timeout")
ASSETS = Path(__file__).resolve().parents[4] / "testbed" / "adaptdl"
"""workflow/testbed/adaptdl: the node image's Dockerfile."""


def _project(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(lock: Path) -> list[str]:
    """The extra's `name==version` from the lock, then setuptools==81.0.0."""
    found = {}
    for line in lock.read_text().splitlines():
        name, sep, version = line.partition("==")
        if sep:
            found[_project(name)] = version.strip()
    missing = [p for p in EXTRA if p not in found]
    if missing:
        raise ProvisionError(f"{lock}: no pin for {', '.join(missing)} (the `adaptdl` extra)")
    if found["adaptdl"] != ADAPTDL_VERSION:
        raise ProvisionError(
            f"{lock} pins adaptdl=={found['adaptdl']}, but Reprise's AdaptDL code is checked "
            f"against {ADAPTDL_VERSION} (reprise.testbed.systems.adaptdl.compat)"
        )
    return [*(f"{p}=={found[p]}" for p in EXTRA), f"setuptools=={SETUPTOOLS_PIN}"]


def constraints(lock: Path, dest: Path) -> Path:
    """The lock without its setuptools line (the one pin AdaptDL overrides)."""
    kept = [
        ln
        for ln in lock.read_text().splitlines()
        if _project(ln.partition("==")[0]) != "setuptools"
    ]
    dest.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(dest, "\n".join(kept) + "\n")
    return dest


def make_venv(venv: Path, lock: Path, log: Path) -> dict[str, Any]:
    """A venv holding AdaptDL and setuptools 81 that sees this interpreter's packages after its
    own (a .pth calling site.addsitedir), so torch and an editable Reprise are not installed twice
    and its setuptools shadows the lock's."""
    wanted = pins(lock)
    base = getattr(sys, "_base_executable", sys.executable)
    python = venv / "bin" / "python"
    parents = [p for p in sys.path if p.endswith("site-packages")]
    with log.open("w") as handle:
        run_step(handle, [base, "-m", "venv", "--clear", str(venv)], f"creating {venv}")
        purelib = subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
        link = Path(purelib) / "zz_reprise_parent.pth"
        link.write_text("".join(f"import site; site.addsitedir({p!r})\n" for p in parents))
        cons = constraints(lock, venv / "constraints.txt")
        run_step(
            handle,
            [str(python), "-m", "pip", "install", "--disable-pip-version-check", "-c", str(cons),
             *wanted],
            "installing AdaptDL into its venv (is the package index reachable?)",
        )  # fmt: skip
        run_step(
            handle,
            [str(python), "-c",
             "from reprise.testbed.systems.adaptdl.compat import load_adaptdl_torch as f; f()"],
            "importing adaptdl.torch in the venv",
        )  # fmt: skip
    return {"venv": str(venv), "python": str(python), "pins": wanted}


def build_adaptdl_image(node_record: Path, lock: Path, record: Path, tag: str) -> dict[str, Any]:
    """`tag` FROM the recorded node image with AdaptDL's wheels; writes `record` and returns it."""
    from reprise.testbed.provision.docker import connect

    dockerfile = ASSETS / "Dockerfile"
    if not dockerfile.is_file():
        raise ProvisionError(f"AdaptDL image asset {dockerfile} is missing (part of the checkout)")
    node = json.loads(node_record.read_text())
    workdir = record.parent / "adaptdl-build"
    context = workdir / "context"
    shutil.rmtree(workdir, ignore_errors=True)
    (context / "wheels").mkdir(parents=True)
    shutil.copyfile(dockerfile, context / "Dockerfile")
    # the node image has these already, at the locked versions (its record lists its wheels)
    present = {_project(w["file"].split("-")[0]) for w in node.get("wheels", [])} - {"setuptools"}
    wanted = pins(lock)
    started = time.monotonic()
    client = connect(timeout=3600)
    with (record.parent / "adaptdl-build.log").open("w") as log:
        run_step(
            log,
            [sys.executable, "-m", "pip", "download", "-q", "-c",
             str(constraints(lock, workdir / "constraints.txt")), "-d", str(context / "wheels"),
             *wanted],
            "pip download of AdaptDL's wheels for the node image",
        )  # fmt: skip
        kept = []
        for wheel in sorted((context / "wheels").iterdir()):
            if _project(wheel.name.split("-")[0]) in present:
                wheel.unlink()
            else:
                kept.append(wheel.name)
        (context / "wheels" / "requirements.txt").write_text("\n".join(wanted) + "\n")
        (context / "project").mkdir()
        project_wheel(context / "project", log)
        stream_build(
            client, context, tag, {"NODE": node["image_id"]}, {"reprise.system": "adaptdl"}, log
        )
    shutil.rmtree(workdir, ignore_errors=True)
    image = client.images.get(tag)
    result = {
        "image_id": str(image.id),
        "tag": tag,
        "node_image_id": node["image_id"],
        "pins": wanted,
        "wheels": kept,
        "seconds": round(time.monotonic() - started, 1),
    }
    write_text_atomic(record, json.dumps(result, indent=2) + "\n")
    return result
