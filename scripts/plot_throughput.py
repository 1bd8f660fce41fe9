"""Draw the throughput-profile figure from its tables."""

import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(snakemake.scriptdir)))
from _log import redirect_stderr
from reprise.plots.throughput import plot_throughput

redirect_stderr(snakemake)
plot_throughput(
    pd.read_csv(snakemake.input.table),
    pd.read_csv(snakemake.input.times),
    [Path(snakemake.output.pdf), Path(snakemake.output.png)],
)
