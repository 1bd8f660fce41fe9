"""Figure 7: GPUs allocated per policy and jobs submitted/accepted over Figure 6(b)'s run."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir)))
from _log import redirect_stderr
from reprise.plots.figure7 import plot_figure7

redirect_stderr(snakemake)
plot_figure7(
    Path(snakemake.input.table),
    Path(snakemake.output.pdf),
    Path(snakemake.output.png),
    Path(snakemake.input.spec),
)
