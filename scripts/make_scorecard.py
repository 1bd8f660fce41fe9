"""Collect every figure table and claim into the report's scorecard page."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir)))
from _log import redirect_stderr
from reprise.analysis.claims import read_claims
from reprise.analysis.scorecard import render_scorecard, render_scorecard_rst, scorecard_rows
from reprise.analysis.tables import write_table

redirect_stderr(snakemake)
tables = {Path(p).stem: Path(p) for p in snakemake.input.tables}
rows = scorecard_rows(tables)
claims = [c for path in snakemake.input.claims for c in read_claims(Path(path))]
render_scorecard(rows, claims, Path(snakemake.output.html))
render_scorecard_rst(rows, claims, Path(snakemake.output.rst))
write_table(rows, Path(snakemake.output.csv), extra_columns=("figure", "figure_name", "mark"))
