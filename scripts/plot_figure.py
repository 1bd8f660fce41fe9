"""Draw one figure from its table (and, for efficiency curves, its runs' events)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir)))
from _log import redirect_stderr
from reprise.config import load_paper
from reprise.plots.draw import draw_figure

redirect_stderr(snakemake)
draw_figure(
    snakemake.params.kind,
    Path(snakemake.input.table),
    [Path(p).parent for p in snakemake.input.events],
    load_paper(snakemake.input.paper),
    snakemake.params.title,
    Path(snakemake.output.pdf),
    Path(snakemake.output.png),
    snakemake.params.notes,
    [Path(p) for p in snakemake.input.published],
)
