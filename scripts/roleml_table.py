"""RoleML offloading run records (every repetition) -> results/tables/roleml_offload.csv."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir)))
from _log import redirect_stderr
from reprise.analysis.roleml import offload_table

redirect_stderr(snakemake)
runs = [Path(summary).parent for summary in snakemake.input.summaries]
offload_table(runs).to_csv(snakemake.output.table, index=False)
