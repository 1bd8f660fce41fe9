"""Validate a trace against its throughput profiles and write it in the canonical schema."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir)))
from _log import redirect_stderr  # noqa: E402

from reprise.data.normalise import normalise_trace  # noqa: E402
from reprise.data.profiles import load_profiles  # noqa: E402

redirect_stderr(snakemake)
profiles = load_profiles(Path(snakemake.input.profiles[0]).parent)
count = normalise_trace(Path(snakemake.input.trace), Path(snakemake.output[0]), profiles)
print(f"{snakemake.input.trace}: {count} jobs", file=sys.stderr)
