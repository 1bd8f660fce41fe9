"""Write the machine-checked claims of one figure from its table."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir)))
from _log import redirect_stderr
from reprise.analysis.claims import figure_claims, write_claims
from reprise.analysis.tables import read_table

redirect_stderr(snakemake)
rows = read_table(Path(snakemake.input[0]))
write_claims(figure_claims(snakemake.wildcards.experiment, rows), Path(snakemake.output[0]))
