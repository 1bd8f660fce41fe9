"""Build the RoleML role image FROM the node image and write its record."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir)))
from _log import redirect_stderr
from reprise.lifetime import die_with_parent
from reprise.testbed.systems.roleml.image import build_role_image

redirect_stderr(snakemake)
die_with_parent()
inputs = snakemake.input
done = build_role_image(
    Path(inputs.node), Path(inputs.lock), Path(snakemake.output.record), snakemake.params.tag
)
print(f"RoleML role image {done['image_id'][:19]} built in {done['seconds']} s", file=sys.stderr)
