"""Fetch one pinned upstream file (offline mirror first, then the pinned URL), sha256-verified."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir)))
from _log import redirect_stderr
from reprise.data.fetch import fetch, mirror_dirs

redirect_stderr(snakemake)
origin = fetch(
    snakemake.params.entry,
    Path(snakemake.output[0]),
    mirror_dirs(snakemake.params.mirrors, Path.cwd()),
    allow_download=snakemake.params.allow_download,
)
print(f"{snakemake.output[0]}: verified copy from {origin}", file=sys.stderr)
