"""Figure 12(b) run record -> results/tables/figure12b.csv (measured beside published seconds)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir)))
from _log import redirect_stderr
from reprise.testbed.runtime.figure12b import overhead_table, write_table

redirect_stderr(snakemake)
rows = overhead_table(Path(snakemake.input.summary).parent, Path(snakemake.input.paper))
write_table(rows, Path(snakemake.output.table))
