"""Build the node image with AdaptDL FROM the node image and write its record."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir)))
from _log import redirect_stderr
from reprise.lifetime import die_with_parent
from reprise.testbed.systems.adaptdl.env import build_adaptdl_image

redirect_stderr(snakemake)
die_with_parent()
inputs = snakemake.input
done = build_adaptdl_image(
    Path(inputs.node), Path(inputs.lock), Path(snakemake.output.record), snakemake.params.tag
)
print(f"AdaptDL node image {done['image_id'][:19]} built in {done['seconds']} s", file=sys.stderr)
