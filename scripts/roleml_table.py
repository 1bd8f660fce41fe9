"""RoleML offloading run record -> results/tables/roleml_offload.csv."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir)))
from _log import redirect_stderr
from reprise.analysis.roleml import offload_table

redirect_stderr(snakemake)
offload_table(Path(snakemake.input.summary).parent).to_csv(snakemake.output.table, index=False)
