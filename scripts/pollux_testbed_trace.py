"""Write one scale's trace of `snakemake pollux_testbed` (laptop: reduced; paper: Figure 6(a))."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir)))
from _log import redirect_stderr
from reprise.data.profiles import load_profiles
from reprise.testbed.systems.adaptdl.calibrate import rates_of
from reprise.testbed.systems.adaptdl.trace import write_scale_trace

redirect_stderr(snakemake)
count = write_scale_trace(
    snakemake.wildcards.scale,
    load_profiles(Path(snakemake.input.profiles[0]).parent),
    snakemake.params.reduced,
    # the paper's trace is upstream's, its work not made from CPU rates
    rates_of(
        snakemake.params.samples_per_s,
        Path(snakemake.input.rates[0]) if snakemake.input.rates else None,
    )
    if snakemake.wildcards.scale == "laptop"
    else {},
    Path(snakemake.output.trace),
)
print(f"{count} jobs written to {snakemake.output.trace}", file=sys.stderr)
