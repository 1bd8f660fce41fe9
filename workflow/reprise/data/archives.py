"""Safe extraction of the upstream trace tarballs."""

from __future__ import annotations

import tarfile
from pathlib import Path

from reprise.errors import DataError


def extract_members(archive: Path, members: dict[str, Path]) -> None:
    """Extract the named members (basename -> destination) of a tar.gz, refusing anything else."""
    wanted = dict(members)
    with tarfile.open(archive, "r:gz") as tar:
        for info in tar:
            name = Path(info.name).name
            if name not in wanted or not info.isfile():
                continue
            source = tar.extractfile(info)
            if source is None:
                continue
            dest = wanted.pop(name)
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = dest.with_name(f".{dest.name}.part")
            with source, tmp.open("wb") as out:
                out.write(source.read())
            tmp.replace(dest)
    if wanted:
        raise DataError(f"{archive}: members not found: {', '.join(sorted(wanted))}")
