"""Obtain pinned upstream files: verified copy, mirrors, then HTTPS; sha256 always checked."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from reprise.errors import ConfigError, DataError

MIRRORS_ENV = "REPRISE_MIRRORS"
"""Extra offline mirror directories, separated by ':' (searched before the configured ones)."""


@dataclass(frozen=True)
class UpstreamFile:
    path: str
    """Relative path, identical under resources/upstream/ and under every mirror."""
    url: str
    sha256: str
    size: int


def load_catalog(path: Path | str) -> dict[str, UpstreamFile]:
    """Read `config/upstream.yaml` (path -> url, sha256, bytes)."""
    path = Path(path)
    with path.open() as fh:
        doc = yaml.safe_load(fh) or {}
    files = doc.get("files")
    if not isinstance(files, dict):
        raise ConfigError(
            f"{path}: expected a top-level mapping 'files: {{path: {{url, sha256}}}}'"
        )
    catalog: dict[str, UpstreamFile] = {}
    for rel, entry in files.items():
        if not isinstance(entry, dict) or "url" not in entry or "sha256" not in entry:
            raise ConfigError(f"{path}: files.{rel}: needs 'url' and 'sha256'")
        digest = str(entry["sha256"]).lower()
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise ConfigError(f"{path}: files.{rel}.sha256: {digest!r} is not a sha256 hex digest")
        catalog[rel] = UpstreamFile(rel, str(entry["url"]), digest, int(entry.get("bytes", -1)))
    return catalog


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def mirror_dirs(configured: Iterable[str], base: Path | None = None) -> list[Path]:
    """Mirrors from $REPRISE_MIRRORS first, then the configured ones (relative to `base`)."""
    dirs: list[Path] = []
    env = os.environ.get(MIRRORS_ENV, "")
    for text in [*env.split(":"), *configured]:
        if not text:
            continue
        candidate = Path(text).expanduser()
        if not candidate.is_absolute() and base is not None:
            candidate = base / candidate
        dirs.append(candidate)
    return dirs


def _install_verified(source: Path, entry: UpstreamFile, dest: Path, origin: str) -> None:
    """Copy to a temporary file beside `dest`, check the hash, then rename into place."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", dir=dest.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        shutil.copyfile(source, tmp)
        actual = sha256_of(tmp)
        if actual != entry.sha256:
            raise DataError(
                f"checksum mismatch for {entry.path} (from {origin}): expected sha256 "
                f"{entry.sha256}, got {actual}; the file was not installed. Remove or repair the "
                f"corrupted copy at {origin}."
            )
        tmp.replace(dest)
    finally:
        tmp.unlink(missing_ok=True)


def _download(entry: UpstreamFile, dest: Path, timeout: float) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.dl.", dir=dest.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        try:
            with (
                urllib.request.urlopen(entry.url, timeout=timeout) as response,
                tmp.open("wb") as out,
            ):
                shutil.copyfileobj(response, out)
        except OSError as exc:
            raise DataError(
                f"could not download {entry.path} from {entry.url}: {exc}. Offline? Point "
                f"${MIRRORS_ENV} (or config data.mirrors) at a directory holding a copy."
            ) from exc
        _install_verified(tmp, entry, dest, entry.url)
    finally:
        tmp.unlink(missing_ok=True)


def fetch(
    entry: UpstreamFile,
    dest: Path,
    mirrors: Sequence[Path],
    allow_download: bool = True,
    timeout: float = 60.0,
) -> str:
    """Put a verified copy of `entry` at `dest`; return where it came from."""
    if dest.exists() and sha256_of(dest) == entry.sha256:
        return "cached"
    for mirror in mirrors:
        candidate = mirror / entry.path
        if candidate.is_file():
            _install_verified(candidate, entry, dest, str(candidate))
            return str(candidate)
    if not allow_download:
        searched = ", ".join(str(m) for m in mirrors) or "(none)"
        raise DataError(
            f"{entry.path} is in no mirror (searched {searched}) and downloads are disabled"
        )
    _download(entry, dest, timeout)
    return entry.url


UPSTREAM_MARKER = "resources/upstream/"
"""Where verified copies live; the part of a path after it is the file's catalog key."""


def catalog_key(path: Path | str) -> str | None:
    """The catalog path of a copy below resources/upstream/ (also behind a storage prefix)."""
    text = Path(path).as_posix()
    head, sep, tail = text.rpartition(UPSTREAM_MARKER)
    if not sep or (head and not head.endswith("/")):
        return None
    return tail


def verify_copy(path: Path, entry: UpstreamFile) -> str:
    """The copy's sha256, which must still be the pinned one: copies are checked where they
    are used, not only when fetched, so an edited or damaged copy cannot reach a result."""
    actual = sha256_of(path)
    if actual != entry.sha256:
        raise DataError(
            f"{path}: the copy of {entry.path} was changed after it was fetched: its sha256 is "
            f"{actual}, the catalog pins {entry.sha256}. Delete it (rm {path}) and rerun: it is "
            f"fetched and verified again."
        )
    return actual


def verify_used(paths: Iterable[Path], catalog: Mapping[str, UpstreamFile]) -> dict[str, str]:
    """Verify every catalog file among `paths`; return catalog key (else name) -> sha256."""
    digests: dict[str, str] = {}
    for path in paths:
        key = catalog_key(path)
        entry = catalog.get(key) if key is not None else None
        if entry is not None:
            digests[entry.path] = verify_copy(path, entry)
        else:
            digests[path.name] = sha256_of(path)
    return digests


def verify_installed(catalog: Mapping[str, UpstreamFile], root: Path) -> int:
    """Verify every catalog file present below `root` (resources/upstream); returns how many."""
    checked = 0
    for entry in catalog.values():
        copy = root / entry.path
        if copy.is_file():
            verify_copy(copy, entry)
            checked += 1
    return checked
