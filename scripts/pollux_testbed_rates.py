"""Measure the reduced trace's models' CPU rates on the nodes (`samples_per_s: measure`)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir)))
from _log import redirect_stderr
from reprise.data.profiles import load_profiles
from reprise.lifetime import die_with_parent
from reprise.testbed.systems.adaptdl.calibrate import CalibrationSettings, measure_rates
from reprise.testbed.systems.adaptdl.controller import ControllerSettings
from reprise.testbed.systems.adaptdl.trace import reduced_models, reduced_settings

redirect_stderr(snakemake)
# a killed Snakemake sends SIGTERM here: the measurement stops its replicas and tears its nodes down
die_with_parent()
record = measure_rates(
    reduced_models(
        reduced_settings(snakemake.params.reduced),
        load_profiles(Path(snakemake.input.profiles[0]).parent),
    ),
    Path(snakemake.input.inventory),
    ControllerSettings(**snakemake.params.controller),
    CalibrationSettings(**snakemake.params.calibrate),
    Path(snakemake.output.rates).parent,
    Path(snakemake.params.state_dir),
    progress=lambda line: print(line, file=sys.stderr, flush=True),
)
print(f"samples/s {record['samples_per_s']} in {record['wall_s']} s", file=sys.stderr)
