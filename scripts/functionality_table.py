"""A scheduling run on the testbed and the same trace simulated beside it -> a results table."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir)))
from _log import redirect_stderr
from reprise.functionality import (
    functionality_table,
    print_counts,
    settings_from_config,
    simulate_beside,
    write_table,
)

redirect_stderr(snakemake)
testbed_dir = Path(snakemake.input.summary).parent
sims = simulate_beside(
    testbed_dir=testbed_dir,
    trace_path=Path(snakemake.input.trace),
    cluster_spec=Path(snakemake.input.spec),
    profile_dir=Path(snakemake.input.profiles[0]).parent,
    settings=settings_from_config(snakemake.params.settings),
    sim_dir=Path(snakemake.output.sims),
    experiment=snakemake.wildcards.schedule,
)
rows = functionality_table(testbed_dir, sims, Path(snakemake.input.paper))
write_table(rows, Path(snakemake.output.table))
print_counts(rows)
