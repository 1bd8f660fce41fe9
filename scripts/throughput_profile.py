"""Provision the cluster, profile every model at every worker count, tear down, write the record."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir)))
from _log import redirect_stderr
from reprise.lifetime import die_with_parent
from reprise.testbed.throughput_profile import run_throughput_profile, settings_from_config

redirect_stderr(snakemake)
# a killed Snakemake sends SIGTERM here: the run tears its nodes down instead of going on
die_with_parent()
outdir = Path(snakemake.output.summary).parent
summary = run_throughput_profile(
    inventory_path=Path(snakemake.input.inventory),
    state_dir=Path(snakemake.input.nodes).parent / "state",
    outdir=outdir,
    settings=settings_from_config(snakemake.params.settings),
    image_record=Path(snakemake.input.image[0]) if snakemake.input.image else None,
)
m = summary["metrics"]
print(f"{m['measurements']} measurements in {summary['wall_seconds']} s", file=sys.stderr)
