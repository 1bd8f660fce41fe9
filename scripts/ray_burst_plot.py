"""results/tables/ray_burst.csv -> the time-vs-bandwidth figure (PDF and PNG)."""

import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(snakemake.scriptdir)))
from _log import redirect_stderr
from reprise.plots.ray_burst import plot_burst

redirect_stderr(snakemake)
plot_burst(pd.read_csv(snakemake.input.table), [Path(p) for p in snakemake.output])
