"""Collect the run summaries of one figure into its table, published numbers beside."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir)))
from _log import redirect_stderr
from reprise.analysis.tables import figure_rows, write_table
from reprise.config import load_paper

redirect_stderr(snakemake)
rows = figure_rows(
    load_paper(snakemake.input.paper),
    [Path(p).parent for p in snakemake.input.summaries],
    snakemake.params.pending,
)
write_table(rows, Path(snakemake.output[0]))
