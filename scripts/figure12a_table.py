"""throughput_profile run record -> results/tables/figure12a.csv (profiling seconds per model)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir)))
from _log import redirect_stderr
from reprise.analysis.figure12a import profiling_table

redirect_stderr(snakemake)
table = profiling_table(Path(snakemake.input.summary).parent, Path(snakemake.input.paper))
table.to_csv(snakemake.output.table, index=False)
print(table.to_string(index=False), file=sys.stderr)
