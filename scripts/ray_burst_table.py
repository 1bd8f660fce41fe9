"""Ray burst run records -> results/tables/ray_burst.csv."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir)))
from _log import redirect_stderr
from reprise.analysis.ray_burst import burst_table

redirect_stderr(snakemake)
table = burst_table([Path(p).parent for p in snakemake.input.summaries])
table.to_csv(snakemake.output.table, index=False)
