"""Figure 6(b)'s testbed runs -> results/tables/figure7.csv (GPUs, submissions, acceptances)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir)))
from _log import redirect_stderr
from reprise.analysis.figure7 import over_time

redirect_stderr(snakemake)
table = over_time(Path(snakemake.input.summary).parent)
table.to_csv(snakemake.output.table, index=False)
print(f"{len(table)} rows", file=sys.stderr)
