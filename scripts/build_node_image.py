"""Build the testbed node image (wheelhouse from the lock, base, docker build); record its id."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir)))
from _log import redirect_stderr
from reprise.lifetime import die_with_parent
from reprise.testbed.image import build_node_image

redirect_stderr(snakemake)
# a killed Snakemake sends SIGTERM here: the run tears its nodes down instead of going on
die_with_parent()
record = Path(snakemake.output.record)
image_id = build_node_image(
    workdir=record.parent / "build",
    log=record.parent / "build.log",
    record=record,
    tag=snakemake.params.image["tag"],
    base=snakemake.params.image["base"],
)
print(f"node image {snakemake.params.image['tag']}: {image_id}", file=sys.stderr)
