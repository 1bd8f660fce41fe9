"""Figure 12(b): measured seconds until stable per model and case, beside the published ones."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir)))
from _log import redirect_stderr
from reprise.plots.figure12b import plot_figure12b

redirect_stderr(snakemake)
plot_figure12b(Path(snakemake.input.table), Path(snakemake.output.pdf), Path(snakemake.output.png))
