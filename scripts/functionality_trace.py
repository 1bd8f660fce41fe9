"""Generate a testbed experiment's one-model seeded trace (upstream's 10-job functionality trace is
not published)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir)))
from _log import redirect_stderr
from reprise.data.clusters import load_cluster_spec
from reprise.data.profiles import load_profiles
from reprise.functionality import trace_params, write_trace

redirect_stderr(snakemake)
params = trace_params(snakemake.params.settings)
jobs = write_trace(
    params,
    load_profiles(Path(snakemake.input.profiles[0]).parent),
    load_cluster_spec(snakemake.input.spec),
    Path(snakemake.output.trace),
)
print(f"{jobs} jobs from {params}", file=sys.stderr)
