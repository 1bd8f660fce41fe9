"""One point of the Ray burst sweep on the cluster's nodes; writes its run record."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir)))
from _log import redirect_stderr
from reprise.lifetime import die_with_parent
from reprise.testbed.systems.ray_burst.run import Point, run_point
from reprise.testbed.systems.ray_burst.settings import parse_settings

redirect_stderr(snakemake)
# a killed Snakemake sends SIGTERM here: the run tears its nodes down instead of going on
die_with_parent()
w = snakemake.wildcards
summary = run_point(
    inventory_path=Path(snakemake.input.inventory),
    state_dir=Path(snakemake.output.summary).parent / "state",
    outdir=Path(snakemake.output.summary).parent,
    settings=parse_settings(snakemake.params.settings),
    point=Point(w.topology, w.workload, w.data, w.scheduler, int(w.rep)),
    data_dir=Path(snakemake.input.manifest).parent,
    controller_python=json.loads(Path(snakemake.input.env).read_text())["python"],
)
print(json.dumps(summary["metrics"]), file=sys.stderr)
