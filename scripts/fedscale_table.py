"""FedScale run records -> results/tables/fedscale.csv (per round) and fedscale_runs.csv."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir)))
from _log import redirect_stderr
from reprise.analysis.fedscale import rounds_table, runs_table

redirect_stderr(snakemake)
table = rounds_table([Path(p).parent for p in snakemake.input.summaries])
table.to_csv(snakemake.output.table, index=False)
runs = runs_table(table, float(snakemake.params.tolerance))
runs.to_csv(snakemake.output.runs, index=False)
print(runs.to_string(), file=sys.stderr)
