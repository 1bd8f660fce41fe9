"""Run the reduced trace on the inventory's nodes under Pollux's policy on our controller."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir)))
from _log import redirect_stderr
from reprise.data.traces import load_trace
from reprise.lifetime import die_with_parent
from reprise.testbed.systems.adaptdl.calibrate import rates_of
from reprise.testbed.systems.adaptdl.controller import ControllerSettings, run_pollux_nodes

redirect_stderr(snakemake)
# a killed Snakemake sends SIGTERM here: the run stops every replica and tears its nodes down
die_with_parent()
summary = run_pollux_nodes(
    load_trace(Path(snakemake.input.trace)),
    Path(snakemake.input.inventory),
    ControllerSettings(seed=snakemake.params.seed, **snakemake.params.controller),
    Path(snakemake.output.summary).parent,
    Path(snakemake.params.state_dir),
    trace_name="pollux_testbed-laptop",
    progress=lambda line: print(line, file=sys.stderr, flush=True),
    samples_per_s={
        "source": "measured" if snakemake.input.rates else "configured",
        "rates": rates_of(
            snakemake.params.samples_per_s,
            Path(snakemake.input.rates[0]) if snakemake.input.rates else None,
        ),
    },
)
print(
    f"deadline ratio {summary['deadline_ratio']:.3f}, re-sized {summary['reallocations']}, "
    f"{summary['wall_s']} s",
    file=sys.stderr,
)
