"""Build the node image with Ray (the node image plus Ray, boto3 and Reprise's current wheel)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir)))
from _log import redirect_stderr
from reprise.testbed.systems.ray_burst.env import build_ray_image, write_json

redirect_stderr(snakemake)
record = build_ray_image(
    base=snakemake.params.base,
    tag=snakemake.params.tag,
    lock=Path(snakemake.input.lock),
    workdir=Path(snakemake.output.record).parent / "ray-build",
    log=Path(snakemake.log[0]).with_suffix(".build.log"),
)
write_json(Path(snakemake.output.record), record)
