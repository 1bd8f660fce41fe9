"""Extract the ITP cluster traces from the elasticflow-traces tarball."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir)))
from _log import redirect_stderr
from reprise.data.archives import extract_members

redirect_stderr(snakemake)
extract_members(Path(snakemake.input[0]), {Path(p).name: Path(p) for p in snakemake.output})
