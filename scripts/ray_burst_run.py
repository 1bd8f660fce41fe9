"""One topology's sweep of the Ray burst study on the cluster's nodes; one record per point."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir)))
from _log import redirect_stderr
from reprise.lifetime import die_with_parent
from reprise.testbed.systems.ray_burst.run import point_of, run_sweep
from reprise.testbed.systems.ray_burst.settings import parse_settings

redirect_stderr(snakemake)
# a killed Snakemake sends SIGTERM here: the run tears its nodes down instead of going on
die_with_parent()
folders = [Path(p).parent for p in snakemake.output.summaries]
# <topology>/<workload>/<data>/<scheduler>/rep<i>: the topology's folder keeps the shared state
workdir = folders[0].parents[3]
summaries = run_sweep(
    inventory_path=Path(snakemake.input.inventory),
    state_dir=workdir / "state",
    workdir=workdir,
    settings=parse_settings(snakemake.params.settings),
    outdirs={point_of(f, snakemake.wildcards.topology): f for f in folders},
    data_dir=Path(snakemake.input.manifest).parent,
    controller_python=json.loads(Path(snakemake.input.env).read_text())["python"],
)
for summary in summaries:
    print(
        json.dumps(
            {
                k: summary[k]
                for k in (
                    "workload",
                    "data_case",
                    "scheduler",
                    "repetition",
                    "wall_seconds",
                    "metrics",
                )
            }
        ),
        file=sys.stderr,
    )
