"""One FedScale run of testbed.fedscale's matrix: deploy, train, tear down, write the run record."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir)))
from _log import redirect_stderr
from reprise.lifetime import die_with_parent
from reprise.testbed.systems.fedscale.job import settings_by_name
from reprise.testbed.systems.fedscale.run import run_fedscale

redirect_stderr(snakemake)
# a killed Snakemake sends SIGTERM here: the run stops its processes and containers
die_with_parent()
settings = settings_by_name(snakemake.params.settings, snakemake.wildcards.run)
data = json.loads(Path(snakemake.input.data).read_text())
images = list(snakemake.input.images)  # empty for local processes
summary = run_fedscale(
    settings,
    Path(data["path"]),
    Path(snakemake.output.summary).parent,
    image_record=Path(images[0]) if images else None,
)
first, final = summary["first_accuracy"], summary["final_accuracy"]
print(
    f"{summary['run']}: accuracy {first} -> {final} in {summary['wall_seconds']} s", file=sys.stderr
)
