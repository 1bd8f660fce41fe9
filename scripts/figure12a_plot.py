"""Figure 12(a): profiling seconds per model, measured beside published."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir)))
from _log import redirect_stderr
from reprise.plots.figure12a import plot_figure12a

redirect_stderr(snakemake)
plot_figure12a(Path(snakemake.input.table), Path(snakemake.output.pdf), Path(snakemake.output.png))
