"""The node image: a wheelhouse of the locked environment built on the host, then `docker build`."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

import docker  # type: ignore[import-untyped]
import docker.errors  # type: ignore[import-untyped]
import docker.utils  # type: ignore[import-untyped]

from reprise.atomic import write_text_atomic
from reprise.data.fetch import sha256_of
from reprise.errors import ProvisionError
from reprise.testbed.provision.docker import connect

REPO = Path(__file__).resolve().parents[3]
NODE_ASSETS = REPO / "workflow" / "testbed" / "node"
ASSET_MODES = {"Dockerfile": 0o644, "sshd_config": 0o644, "entrypoint.sh": 0o755}
# `testbed.image.base`: this value means "our own debootstrap base"; anything else is an image name.
DEBIAN_BOOTSTRAP = "debian-bootstrap"
# what the node image is built from; the reuse check finds an image by the first
NODE_LABELS = ("reprise.inputs", "reprise.base", "reprise.base-id")
DEBIAN_BASE_TAG = "reprise-debian:bookworm"
BASE_SCRIPT = NODE_ASSETS / "debian-base.sh"
# Wheels get fixed zip timestamps, so an unchanged checkout gives a byte-identical wheel.
SOURCE_DATE_EPOCH = "315532800"
BUILD_TIMEOUT_S = 3600
PIP_WHEEL = (sys.executable, "-m", "pip", "wheel")


@dataclass(frozen=True)
class Wheel:
    file: str
    sha256: str
    bytes: int


class _Log:
    """One log file for every step, each line stamped with the time of day it was written."""

    def __init__(self, handle: IO[str]) -> None:
        self.handle = handle

    def line(self, text: str) -> None:
        stamp = time.strftime("%H:%M:%S")
        for part in text.rstrip("\n").split("\n"):
            self.handle.write(f"[{stamp}] {part}\n")
        self.handle.flush()

    def run(self, argv: list[str], what: str, env: Mapping[str, str] | None = None) -> None:
        """Run a command with its output in the log; a failure names the step and the log."""
        self.line("$ " + " ".join(argv))
        proc = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=None if env is None else {**os.environ, **env},
            start_new_session=True,
        )
        assert proc.stdout is not None
        tail: list[str] = []
        try:
            for raw in proc.stdout:
                self.line(raw)
                tail = [*tail[-19:], raw.rstrip()]
            proc.wait()
        except BaseException:
            _stop_group(proc)
            raise
        if proc.returncode != 0:
            raise ProvisionError(
                f"{what} failed (exit {proc.returncode}); full log: {self.handle.name}\n"
                + "\n".join(tail)
            )


def _stop_group(proc: subprocess.Popen[str]) -> None:
    """Ctrl-C or SIGTERM while a step runs: stop its whole process group (debootstrap, pip)."""
    for sig, wait_s in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait_s)
            return
        except subprocess.TimeoutExpired:
            continue


def _project_wheel(project: Path, dest: Path, log: _Log) -> None:
    """Reprise's own wheel, built from a copy of the checkout's sources (never in the tree)."""
    with tempfile.TemporaryDirectory(prefix="reprise-src-") as tmp:
        src = Path(tmp)
        shutil.copy2(project / "pyproject.toml", src / "pyproject.toml")
        shutil.copytree(
            project / "workflow" / "reprise",
            src / "workflow" / "reprise",
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"),
        )
        log.run(
            [*PIP_WHEEL, "--no-deps", "--no-build-isolation", "--wheel-dir", str(dest), str(src)],
            "building Reprise's wheel",
            env={"SOURCE_DATE_EPOCH": SOURCE_DATE_EPOCH},
        )


def run_step(handle: IO[str], argv: list[str], what: str) -> None:
    """Run one build step of another image or env with its output time-stamped in `handle`;
    a failure raises ProvisionError naming `what` and the log."""
    _Log(handle).run(argv, what)


def project_wheel(dest: Path, handle: IO[str]) -> None:
    """Reprise's own wheel, from this checkout, into `dest` (step logged in `handle`)."""
    _project_wheel(REPO, dest, _Log(handle))


def stream_build(
    client: Any,
    context: Path,
    tag: str,
    buildargs: dict[str, str],
    labels: dict[str, str],
    handle: IO[str],
    target: str | None = None,
) -> None:
    """`docker build` of another image (a stage `target` of its Dockerfile), its steps
    time-stamped in `handle`; the tag is set only when the build succeeds.

    An image built FROM the node image inherits its labels, `reprise.inputs` among them, and the
    node image's reuse check would then take it for the node image (a Ray node started with
    FedScale's entry point). Its own image gets those labels emptied."""
    own = {key: "" for key in NODE_LABELS} | labels
    _stream_build(client, context, tag, buildargs, own, _Log(handle), False, target=target)


def build_wheelhouse(project: Path, lock: Path, context: Path, log: IO[str]) -> list[Wheel]:
    """Every wheel a node needs, pinned by `lock`: Reprise's own in `context`/project, the
    dependencies of its `testbed` extra in `context`/wheels.

    pip resolves on the host, from whatever index or local wheel folders its configuration
    names; the nodes later install from these folders alone.
    """
    out = _Log(log)
    if not lock.is_file():
        raise ProvisionError(f"no lock file {lock}: the wheelhouse pins every package with it")
    own_dir, deps_dir = context / "project", context / "wheels"
    for folder in (own_dir, deps_dir):
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
    _project_wheel(project, own_dir, out)
    own = sorted(own_dir.glob("*.whl"))
    if len(own) != 1:
        raise ProvisionError(f"expected one Reprise wheel in {own_dir}, found {len(own)}")
    # The wheel file itself as the requirement: a package of the same name on an index can't win.
    out.run(
        [*PIP_WHEEL, "--wheel-dir", str(deps_dir), "-c", str(lock), f"{own[0]}[testbed]"],
        "pip wheel of the testbed environment (is the package index or local wheel folder "
        "that pip's configuration names reachable?)",
        env={"SOURCE_DATE_EPOCH": SOURCE_DATE_EPOCH},
    )
    (deps_dir / own[0].name).unlink(missing_ok=True)
    wheels = [
        Wheel(file=p.name, sha256=sha256_of(p), bytes=p.stat().st_size)
        for p in sorted([*own, *deps_dir.glob("*.whl")], key=lambda p: p.name.lower())
    ]
    out.line(f"wheelhouse: {len(wheels)} wheels, {sum(w.bytes for w in wheels) / 1e6:.0f} MB")
    return wheels


def _image_or_none(client: Any, ref: str) -> Any:
    try:
        return client.images.get(ref)
    except docker.errors.ImageNotFound:
        return None


def ensure_base(client: Any, base: str, log: IO[str], *, rebuild: bool = False) -> tuple[str, str]:
    """The base image as (reference for FROM, image id); builds or pulls it when missing.

    `debian-bootstrap` is rebuilt when debian-base.sh changed since the image was made (its
    label says which script made it); any other value is an image name, pulled if absent.
    """
    out = _Log(log)
    if base == DEBIAN_BOOTSTRAP:
        script_sha = sha256_of(BASE_SCRIPT)
        image = _image_or_none(client, DEBIAN_BASE_TAG)
        current = image is not None and image.labels.get("reprise.base-script") == script_sha
        if current and not rebuild:
            out.line(f"base {DEBIAN_BASE_TAG} is up to date ({image.id})")
            return DEBIAN_BASE_TAG, str(image.id)
        if os.geteuid() != 0:
            raise ProvisionError(
                f"the node image base {DEBIAN_BOOTSTRAP!r} is made with debootstrap, which needs "
                "root; run as root, or set testbed.image.base in config/config.yaml to an image "
                "name such as python:3.11-slim"
            )
        out.run(
            ["bash", str(BASE_SCRIPT), DEBIAN_BASE_TAG, f"reprise.base-script={script_sha}"],
            f"building the base image {DEBIAN_BASE_TAG} with {BASE_SCRIPT}",
        )
        return DEBIAN_BASE_TAG, str(client.images.get(DEBIAN_BASE_TAG).id)
    image = _image_or_none(client, base)
    if image is None:
        repository, tag = docker.utils.parse_repository_tag(base)
        out.line(f"pulling {base}")
        try:
            image = client.images.pull(repository, tag=tag or "latest")
        except docker.errors.APIError as exc:
            raise ProvisionError(
                f"the node image base {base!r} is not on this Docker daemon and could not be "
                f"pulled ({exc.explanation or exc}); where no registry is reachable set "
                f"testbed.image.base to {DEBIAN_BOOTSTRAP!r}"
            ) from None
    return base, str(image.id)


def _fingerprint(context: Path, base_id: str) -> str:
    """What the image is made of: base image, assets, pins and every wheel's digest."""
    digest = hashlib.sha256(base_id.encode())
    for path in sorted(p for p in context.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(context)).encode() + b"\0")
        digest.update(sha256_of(path).encode())
    return digest.hexdigest()


def _stream_build(
    client: Any,
    context: Path,
    tag: str,
    buildargs: dict[str, str],
    labels: dict[str, str],
    out: _Log,
    no_cache: bool,
    target: str | None = None,
) -> None:
    """Legacy builder (no BuildKit on Debian's 20.10): stream each step into the log as it runs."""
    errors: list[str] = []
    tail: list[str] = []
    try:
        for chunk in client.api.build(
            path=str(context),
            tag=tag,
            rm=True,
            forcerm=True,
            nocache=no_cache,
            target=target,
            buildargs=buildargs,
            labels=labels,
            decode=True,
            timeout=BUILD_TIMEOUT_S,
        ):
            text = chunk.get("stream") or chunk.get("status") or ""
            if text.strip():
                out.line(text)
                tail = [*tail[-19:], text.rstrip()]
            if "error" in chunk:
                errors.append(str(chunk["error"]).strip())
                out.line("ERROR " + errors[-1])
    except docker.errors.APIError as exc:
        errors.append(str(exc.explanation or exc))
    if errors:
        raise ProvisionError(
            f"docker build of {tag} failed: {errors[-1]}\nfull log: {out.handle.name}\n"
            + "\n".join(tail)
        )


def build_image(
    client: Any,
    context: Path,
    tag: str,
    base_ref: str,
    base_id: str,
    log: IO[str],
    *,
    no_cache: bool = False,
) -> tuple[str, bool]:
    """Build `tag` from a prepared context unless an image of the same inputs exists already.

    Returns the image id and whether a build ran.
    """
    out = _Log(log)
    inputs = _fingerprint(context, base_id)
    same = [] if no_cache else client.images.list(filters={"label": f"reprise.inputs={inputs}"})
    # oldest first: an image derived from this one before its labels were emptied (see
    # stream_build) carries the same label but is always newer than the image it came from
    same.sort(key=lambda image: str(image.attrs.get("Created", "")))
    if same:
        # built before from the same inputs, maybe under another tag: tag it, build nothing
        repository, version = docker.utils.parse_repository_tag(tag)
        same[0].tag(repository, version or "latest")
        out.line(f"{tag} is up to date ({same[0].id}); nothing to build")
        return str(same[0].id), False
    labels = dict(zip(NODE_LABELS, (inputs, base_ref, base_id), strict=True))
    previous = _image_or_none(client, tag)
    _stream_build(client, context, tag, {"BASE": base_ref}, labels, out, no_cache)
    image_id = str(client.images.get(tag).id)
    if previous is not None and previous.id != image_id:
        _drop_superseded(client, previous.id, out)
    return image_id, True


def _drop_superseded(client: Any, image_id: str, out: _Log) -> None:
    """The node image `tag` pointed to before, now untagged: remove it (the layer cache stays)."""
    image = _image_or_none(client, image_id)
    if image is None or image.tags or "reprise.inputs" not in image.labels:
        return
    try:
        client.images.remove(image_id)
        out.line(f"removed the superseded node image {image_id}")
    except docker.errors.APIError as exc:
        out.line(f"kept the superseded node image {image_id}: {exc.explanation or exc}")


def _prepare_context(assets: Path, context: Path) -> None:
    context.mkdir(parents=True, exist_ok=True)
    for name, mode in ASSET_MODES.items():
        source = assets / name
        if not source.is_file():
            raise ProvisionError(
                f"node image asset {source} is missing (it is part of the checkout)"
            )
        shutil.copyfile(source, context / name)
        (context / name).chmod(mode)


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    write_text_atomic(path, json.dumps(data, indent=2) + "\n")


def build_node_image(
    *,
    workdir: Path,
    log: Path,
    record: Path,
    tag: str = "reprise-node:latest",
    base: str = DEBIAN_BOOTSTRAP,
    project: Path = REPO,
    lock: Path | None = None,
    assets: Path = NODE_ASSETS,
    fresh: bool = False,
) -> str:
    """Wheelhouse, base and node image in one go; returns the image id and writes `record`.

    `workdir`/context is the build context (assets, `wheels/`, `project/`); `record` is a JSON
    file with the image id, tag, base, build times, size and every wheel with its sha256.
    `fresh` rebuilds the base and the image without Docker's layer cache (to time a full build).
    """
    lock = project / "requirements.lock" if lock is None else lock
    client = connect(timeout=BUILD_TIMEOUT_S)
    context = workdir / "context"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w", encoding="utf-8") as handle:
        t0 = time.monotonic()
        base_ref, base_id = ensure_base(client, base, handle, rebuild=fresh)
        t1 = time.monotonic()
        _prepare_context(assets, context)
        wheels = build_wheelhouse(project, lock, context, handle)
        t2 = time.monotonic()
        image_id, built = build_image(
            client, context, tag, base_ref, base_id, handle, no_cache=fresh
        )
        t3 = time.monotonic()
    image = client.images.get(image_id)
    _write_json(
        record,
        {
            "image_id": image_id,
            "tag": tag,
            "base": base,
            "base_image_id": base_id,
            "built": built,
            "base_seconds": round(t1 - t0, 1),
            "wheelhouse_seconds": round(t2 - t1, 1),
            "build_seconds": round(t3 - t2, 1),
            "size_bytes": int(image.attrs.get("Size", 0)),
            "inputs_sha256": image.labels.get("reprise.inputs"),
            "docker_server": client.version().get("Version"),
            "wheels": [asdict(w) for w in wheels],
        },
    )
    return image_id
