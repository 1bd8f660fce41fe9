"""RoleML offloading figures: the run's timeline and the phase latencies."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir)))
from _log import redirect_stderr
from reprise.plots.roleml import plot_phases, plot_timeline

redirect_stderr(snakemake)
run = Path(snakemake.input.summary).parent
for out in snakemake.output.timeline:
    plot_timeline(run, Path(out))
for out in snakemake.output.phases:
    plot_phases(Path(snakemake.input.table), Path(out))
