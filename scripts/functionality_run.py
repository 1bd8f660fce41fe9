"""Provision the nodes, run every policy of a scheduling experiment on them, tear down."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir)))
from _log import redirect_stderr
from reprise.functionality import run_functionality, settings_from_config
from reprise.lifetime import die_with_parent

redirect_stderr(snakemake)
# a killed Snakemake sends SIGTERM here: the run tears its nodes down instead of going on
die_with_parent()
summary = run_functionality(
    inventory_path=Path(snakemake.input.inventory),
    state_dir=Path(snakemake.input.nodes).parent / "state",
    outdir=Path(snakemake.output.summary).parent,
    trace_path=Path(snakemake.input.trace),
    cluster_spec=Path(snakemake.input.spec),
    profile_dir=Path(snakemake.input.profiles[0]).parent,
    settings=settings_from_config(snakemake.params.settings),
    experiment=snakemake.wildcards.schedule,
    image_record=Path(snakemake.input.image[0]) if snakemake.input.image else None,
)
print(f"done in {summary['wall_seconds']} s", file=sys.stderr)
