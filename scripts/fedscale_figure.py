"""Draw results/figures/fedscale.{pdf,png} from the FedScale tables."""

import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(snakemake.scriptdir)))
from _log import redirect_stderr
from reprise.plots.fedscale import plot_fedscale

redirect_stderr(snakemake)
plot_fedscale(
    pd.read_csv(snakemake.input.table),
    pd.read_csv(snakemake.input.runs),
    [Path(snakemake.output.pdf), Path(snakemake.output.png)],
)
