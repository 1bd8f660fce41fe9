"""Draw a figure's deadline-ratio bars from its table."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir)))
from _log import redirect_stderr
from reprise.analysis.tables import read_table
from reprise.plots.ratio_bars import plot_ratio_bars

redirect_stderr(snakemake)
plot_ratio_bars(
    read_table(Path(snakemake.input[0])),
    snakemake.params.title,
    Path(snakemake.output.pdf),
    Path(snakemake.output.png),
)
