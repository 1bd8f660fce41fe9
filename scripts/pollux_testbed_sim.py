"""The simulated Pollux (the shared core's simulator) on one scale's trace, mapped to its apps."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir)))
from _log import redirect_stderr
from reprise.config import data_root_of
from reprise.data.clusters import cluster_from_name
from reprise.data.traces import load_trace
from reprise.testbed.systems.adaptdl.simulated import write_simulated_run

redirect_stderr(snakemake)
summary = write_simulated_run(
    load_trace(Path(snakemake.input.trace)),
    cluster_from_name(snakemake.params.cluster),
    data_root_of("pollux", list(snakemake.input.data)),
    snakemake.params.seed,
    snakemake.params.applications,
    Path(snakemake.output.summary).parent,
    trace_name=f"pollux_testbed-{snakemake.wildcards.scale}",
)
print(summary.get("not_simulated") or summary["metrics"], file=sys.stderr)
