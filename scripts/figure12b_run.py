"""Provision the cluster, measure Figure 12(b)'s scaling and migration cases, tear down."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir)))
from _log import redirect_stderr
from reprise.lifetime import die_with_parent
from reprise.testbed.runtime.figure12b import run_figure12b, settings_from_config

redirect_stderr(snakemake)
# a killed Snakemake sends SIGTERM here: the run tears its nodes down instead of going on
die_with_parent()
summary = run_figure12b(
    inventory_path=Path(snakemake.input.inventory),
    state_dir=Path(snakemake.input.nodes).parent / "state",
    outdir=Path(snakemake.output.summary).parent,
    settings=settings_from_config(snakemake.params.settings),
    image_record=Path(snakemake.input.image[0]) if snakemake.input.image else None,
)
print(f"{summary['metrics']} in {summary['wall_seconds']} s", file=sys.stderr)
