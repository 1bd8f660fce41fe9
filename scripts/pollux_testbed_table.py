"""The testbed deadline ratio beside the simulated Pollux and the published Figure 6(a) bar."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir)))
from _log import redirect_stderr
from reprise.analysis.pollux_testbed import pollux_table

redirect_stderr(snakemake)
inputs = snakemake.input
table = pollux_table(
    {"laptop": Path(inputs.testbed).parent},
    {scale: Path(p).parent for scale, p in zip(snakemake.params.scales, inputs.sims, strict=True)},
    Path(inputs.paper),
)
table.to_csv(snakemake.output.table, index=False)
print(table.to_string(index=False), file=sys.stderr)
