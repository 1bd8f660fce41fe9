"""Generate the study's inputs (ImageFolder directories, large images) at the configured scale."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir)))
from _log import redirect_stderr
from reprise.testbed.systems.ray_burst.data import generate
from reprise.testbed.systems.ray_burst.settings import parse_settings

redirect_stderr(snakemake)
settings = parse_settings(snakemake.params.settings)
manifest = generate(Path(snakemake.output.manifest).parent, settings.size, settings.seed)
print(f"{len(manifest['inputs'])} inputs", file=sys.stderr)
