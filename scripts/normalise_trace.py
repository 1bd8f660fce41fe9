"""Validate a trace against its throughput profiles and write it in the canonical schema."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir)))
from _log import redirect_stderr
from reprise.data.normalise import normalise_trace
from reprise.data.profiles import load_profiles

redirect_stderr(snakemake)
profiles = load_profiles(Path(snakemake.input.profiles[0]).parent)
count = normalise_trace(Path(snakemake.input.trace), Path(snakemake.output[0]), profiles)
print(f"{snakemake.input.trace}: {count} jobs", file=sys.stderr)
